"""``python -m llmesh.services.processor [--config FILE] [--address HOST:PORT]
[--allow-unauthenticated]``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from llmesh.services.common.config import Config
from llmesh.services.common.service_main import service_main
from llmesh.services.processor.server import run


def _options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--address", help="gRPC address to bind (default: processor.address, 127.0.0.1:50052)"
    )


async def _serve(config: Config, args: argparse.Namespace) -> None:
    await run(config, address=args.address)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line and serve until SIGINT or SIGTERM."""
    service_main("processor", _serve, argv, options=_options)


if __name__ == "__main__":
    main()
