"""Deployment pools: one model behind several deployments, ordered per call by a strategy.

`DeploymentStats` watches attempts (in flight, latency, last minute's use); `Balancer`
orders a pool's deployments from them for each call; `Reloader` swaps routes, pools and
providers from the configuration file while the orchestrator runs.
"""

from llmesh.services.orchestrator.pools.balancer import Balancer, Choice, PriceOf, Skip
from llmesh.services.orchestrator.pools.stats import DeploymentStats, PeakEwma, Window

__all__ = ["Balancer", "Choice", "DeploymentStats", "PeakEwma", "PriceOf", "Skip", "Window"]
