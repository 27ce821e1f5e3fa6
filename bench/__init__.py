"""The llmesh benchmark suite: llmesh against the direct path to the same upstream.

``python -m bench`` (``make bench``) starts an upstream, the orchestrator and the gateway as
separate pinned processes, alternates every workload between the direct path and llmesh,
prints a markdown table and writes JSON to ``bench/results/``. ``python -m bench --soak``
(``make soak``) holds a steady load and watches memory; ``--smoke`` is a seconds-long run.

The package imports nothing itself, so its upstream (`bench.fast_upstream`) starts lean.
"""

__all__: list[str] = []
