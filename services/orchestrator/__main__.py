"""``python -m llmesh.services.orchestrator [--config FILE] [--allow-unauthenticated]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llmesh.services.common.config import load_config, with_overrides
from llmesh.services.common.event_loop import run_service
from llmesh.services.common.logs import configure_logging
from llmesh.services.orchestrator.server import run


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m llmesh.services.orchestrator", description="Run the llmesh orchestrator."
    )
    parser.add_argument("--config", help="configuration file (default: as for llmesh)")
    parser.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback address even though no API keys exist",
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        config = load_config(args.config)
        if args.allow_unauthenticated:
            config = with_overrides(config, allow_unauthenticated=True)
        run_service(run(config))
    except ValueError as exc:  # a bad configuration, or a non-loopback bind without keys
        sys.exit(f"python -m llmesh.services.orchestrator: {exc}")


if __name__ == "__main__":
    main()
