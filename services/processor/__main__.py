"""``python -m services.processor [--address HOST:PORT]``: run the processor alone."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from collections.abc import Sequence

from services.common.config import Config
from services.processor.server import run


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until SIGINT or SIGTERM."""
    default = Config().processor_address
    parser = argparse.ArgumentParser(
        prog="python -m services.processor", description="Run the llmesh processor."
    )
    parser.add_argument(
        "--address", default=default, help=f"gRPC address to bind (default {default})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LLMESH_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    asyncio.run(run(args.address))


if __name__ == "__main__":
    main()
