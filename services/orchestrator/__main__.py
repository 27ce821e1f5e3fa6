"""``python -m llmesh.services.orchestrator [--config FILE] [--allow-unauthenticated]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from llmesh.services.common.config import Config
from llmesh.services.common.service_main import service_main
from llmesh.services.orchestrator.server import run


async def _serve(config: Config, args: argparse.Namespace) -> None:
    await run(config)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until SIGINT or SIGTERM."""
    service_main("orchestrator", _serve, argv)


if __name__ == "__main__":
    main()
