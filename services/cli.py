"""The ``llmesh`` command: run the mesh, run one service, chat from the terminal."""

from __future__ import annotations

import argparse
import asyncio
import errno
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence

from llmesh.services.common.config import (
    Config,
    ConfigError,
    load_config,
    resolve_provider,
    with_overrides,
)
from llmesh.services.common.event_loop import run_service
from llmesh.services.common.logs import apply_service_levels, configure_logging
from llmesh.services.common.supervisor import WorkerGroup
from llmesh.services.common.workers import (
    WorkerSlot,
    default_workers,
    worker_config,
    workers_problem,
)

SERVICES = ("emulator", "orchestrator", "processor", "gateway")
WORKER_SERVICES = ("orchestrator", "gateway")
"""The services `llmesh up --workers N` runs as N processes sharing a port."""
DATABASE_COMMANDS = ("usage", "ledger", "templates", "keys")
"""The commands that work on the database of ``database_url``, run by their own modules."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llmesh", description="A typed gRPC service mesh for LLM calls."
    )
    p.add_argument("--config", help="configuration file (default: $LLMESH_CONFIG or ./llmesh.yaml)")
    p.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve a non-loopback address even though no API keys exist",
    )
    sub = p.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up", help="start the whole mesh (emulator when used, orchestrator, processor, gateway)"
    )
    up.add_argument(
        "--workers",
        type=_positive,
        help="processes for the orchestrator and for the gateway, each sharing its port "
        "(default: orchestrator.workers / gateway.workers, else the number of cores)",
    )
    serve = sub.add_parser("serve", help="run one service in the foreground")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument(
        "--worker",
        type=_slot,
        default=WorkerSlot(),
        metavar="I/N",
        help="serve as worker I of N processes sharing the port (SO_REUSEPORT), as "
        "`llmesh up --workers N` starts them (orchestrator and gateway)",
    )
    chat = sub.add_parser("chat", help="stream a reply to the terminal over gRPC")
    chat.add_argument("prompt")
    chat.add_argument("--model", default="emulator/echo")
    chat.add_argument("--system", default="", help="a system prompt")
    chat.add_argument("--max-tokens", type=int)
    chat.add_argument("--timeout", type=float, default=120.0, help="deadline in seconds")
    chat.add_argument("--address", help="orchestrator address (default: from configuration)")
    _api_key_option(chat)
    from llmesh.services.ledger.cli import add_ledger_parsers

    add_ledger_parsers(sub)
    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key (shown once)")
    create.add_argument("--tenant", required=True)
    create.add_argument("--name", default="")
    create.add_argument(
        "--priority", help="tier of the key's calls that name none (batch ... critical)"
    )
    create.add_argument(
        "--max-priority", help="highest tier the key's calls may use (default: normal)"
    )
    listing = keys_sub.add_parser("list", help="list keys (never their secrets)")
    listing.add_argument("--tenant")
    listing.add_argument("--json", action="store_true")
    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    templates = sub.add_parser("templates", help="prompt templates", add_help=False)
    templates.add_argument("rest", nargs=argparse.REMAINDER)  # its own parser's
    from llmesh.services.batch.cli import add_batch_parser

    add_batch_parser(sub, _api_key_option)
    models = sub.add_parser("models", help="list routable models")
    models.add_argument("--address", help="orchestrator address (default: from configuration)")
    _api_key_option(models)
    return p


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


def _slot(text: str) -> WorkerSlot:
    try:
        return WorkerSlot.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _api_key_option(command: argparse.ArgumentParser) -> None:
    """``--api-key`` on a command that calls the mesh over gRPC."""
    command.add_argument(
        "--api-key",
        help="llmesh API key, sent as 'authorization: Bearer <key>' "
        "(default: $LLMESH_API_KEY; needed once keys exist)",
    )


def _api_key(args: argparse.Namespace) -> str | None:
    """The key of ``--api-key``, else of ``$LLMESH_API_KEY``; None when neither is set."""
    key: str | None = args.api_key or os.environ.get("LLMESH_API_KEY") or None
    return key.strip() if key else None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``llmesh`` command."""
    args = _parser().parse_args(argv)
    configure_logging()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        sys.exit(f"llmesh: {exc}")
    if args.allow_unauthenticated:
        config = with_overrides(config, allow_unauthenticated=True)
    if args.command == "up":
        try:
            status = _up(config, args.config, args.workers)
        except ConfigError as exc:  # e.g. replicas dialled by IP over TLS with no server_name
            sys.exit(f"llmesh: {exc}")
        sys.exit(status)
    if args.command == "serve":
        _serve(config, args.service, args.worker)
        return
    if args.command in DATABASE_COMMANDS:
        sys.exit(_database_command(args, config.database_url))
    from llmesh.services import client
    from llmesh.services.common.tls import check_client
    from llmesh.services.telemetry.tracing import install_tracing

    try:
        check_client(config.tls.service("cli"), "CLI")
    except ConfigError as exc:
        sys.exit(f"llmesh: {exc}")

    install_tracing(config.telemetry, "cli")  # nothing when tracing is off
    if args.command == "batch":
        from llmesh.services.batch.cli import batch_command

        address, tls = args.address or config.orchestrator_address, config.tls.service("cli")
        sys.exit(asyncio.run(batch_command(args, address, api_key=_api_key(args), tls=tls)))
    if args.command == "chat":
        sys.exit(
            asyncio.run(
                client.chat_to_terminal(
                    args.address or config.orchestrator_address,
                    args.prompt,
                    model=args.model,
                    system=args.system,
                    max_tokens=args.max_tokens,
                    timeout=args.timeout,
                    api_key=_api_key(args),
                    telemetry=config.telemetry,
                    tls=config.tls.service("cli"),
                )
            )
        )
    if args.command == "models":
        sys.exit(
            asyncio.run(
                client.print_models(
                    args.address or config.orchestrator_address,
                    api_key=_api_key(args),
                    telemetry=config.telemetry,
                    tls=config.tls.service("cli"),
                )
            )
        )


def _database_command(args: argparse.Namespace, database_url: str) -> int | str:
    """Run one of `DATABASE_COMMANDS` in its own module: the exit code, or the message to
    exit with."""
    if args.command == "usage":
        from llmesh.services.ledger.cli import usage_main

        return usage_main(database_url, args)
    if args.command == "ledger":
        from llmesh.services.ledger.cli import ledger_main

        return ledger_main(database_url)
    if args.command == "templates":
        from llmesh.services.templates.cli import templates_main

        return templates_main(database_url, args.rest)
    from llmesh.services.auth.cli import keys_main

    return keys_main(database_url, args)


def _serve(config: Config, service: str, slot: WorkerSlot) -> None:
    apply_service_levels(config.telemetry.logs, service)
    if slot.shared and service not in WORKER_SERVICES:
        sys.exit(f"llmesh: only the {' and the '.join(WORKER_SERVICES)} run as workers")
    problem = workers_problem(config, slot.count) if service == "orchestrator" else None
    if problem is not None:
        sys.exit(f"llmesh: {problem}")
    config = worker_config(config, service, slot)
    try:
        if service == "orchestrator" and config.orchestrator_http_port:
            from llmesh.services.direct.server import run as run_direct

            run_service(run_direct(config))
        elif service == "orchestrator":
            from llmesh.services.orchestrator.server import run as run_orchestrator

            run_service(run_orchestrator(config, reuse_port=slot.shared))
        elif service == "processor":
            from llmesh.services.processor.server import run as run_processor

            run_service(run_processor(config))
        elif service == "gateway":
            from llmesh.gateway.server import run as run_gateway

            run_service(run_gateway(config, reuse_port=slot.shared))
        else:
            from llmesh.services.emulator.app import run as run_emulator
            from llmesh.services.emulator.settings import EmulatorSettings

            settings = EmulatorSettings(
                host=config.emulator.host,
                port=config.emulator.port,
                allow_unauthenticated=config.allow_unauthenticated,
            )
            run_service(run_emulator(settings=settings))
    except ValueError as exc:  # e.g. a non-loopback bind without API keys
        sys.exit(f"llmesh: {exc}")


def _needs_emulator(config: Config) -> bool:
    return any(
        resolve_provider(p, config.emulator).uses_emulator for p in config.providers.values()
    )


def _die_with_parent() -> None:
    """In a child: receive SIGTERM if `llmesh up` itself dies, so no service is orphaned."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: Ctrl-C still reaches the process group
        pass


def _listen_problem(address: str) -> str | None:
    """Why a new listener could not take ``host:port`` now, or None when it is free.

    A connect probe cannot tell a service's own listener from another process that already
    answers there, so `llmesh up` checks that every address is free before it starts
    anything. The probe socket sets no ``SO_REUSEPORT``: even a listener that shares its
    port (as llmesh's gRPC servers do) makes it fail.
    """
    host, _, port = address.rpartition(":")
    if not port.isdigit() or int(port) == 0:
        return None  # a unix socket or an ephemeral port: nothing to collide with
    try:
        infos = socket.getaddrinfo(
            host.strip("[]") or None,
            int(port),
            type=socket.SOCK_STREAM,
            flags=socket.AI_PASSIVE,
        )
    except (socket.gaierror, UnicodeError) as exc:
        return f"cannot resolve {address}: {exc}"
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                probe.bind(sockaddr)
                probe.listen(1)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    return f"{address} is already in use (another process is listening there)"
                if exc.errno == errno.EACCES:
                    return f"no permission to listen on {address}"
                # anything else (e.g. an address this host does not have): the service says
    return None


def _busy(name: str, address: str) -> bool:
    """Say in one line, and return True, when the service `name` cannot listen on `address`."""
    problem = _listen_problem(address)
    if problem:
        print(f"llmesh: cannot start the {name}: {problem}", file=sys.stderr, flush=True)
    return problem is not None


STOP_ORDER = ("gateway", "orchestrator", "processor", "emulator")
"""The order `llmesh up` stops its services: callers before what they call, so in-flight
calls drain through a gateway, orchestrator, processor and emulator that are still there."""


def _stop_in_order(groups: Sequence[WorkerGroup], grace: float) -> None:
    """Stop each service in `STOP_ORDER` (all its workers at once) before the next."""
    started = {group.name: group for group in groups}
    for name in STOP_ORDER:
        if name in started:
            started[name].stop(grace)


def _child_command(config: Config, config_path: str | None) -> list[str]:
    """The command line `llmesh up` starts each service with (``serve NAME`` follows).

    It carries the configuration file and the opt-out, so every service decides as `up`
    was told to.
    """
    command = [sys.executable, "-m", "llmesh.services.cli"]
    if config_path:
        command += ["--config", config_path]
    if config.allow_unauthenticated:
        command.append("--allow-unauthenticated")
    return command


def _exposure_refusal(config: Config, plan: Sequence[tuple[str, str, str]]) -> str | None:
    """The refusal a service of `plan` would give for its address, found before any starts.

    Each service checks its own bind when it starts (see `llmesh.services.common.exposure`); asking
    first means `llmesh up` never starts half a mesh to stop it again. With the opt-out set
    there is nothing to refuse, and each service logs its own WARNING.
    """
    from llmesh.services.common.exposure import is_loopback

    if config.allow_unauthenticated:
        return None
    exposed = [(name, address) for name, address, _ in plan if not is_loopback(address)]
    if not exposed:
        return None
    from llmesh.services.auth import check_bind, open_key_store
    from llmesh.services.common.sqlite import missing_sqlite_file
    from llmesh.services.emulator.app import check_host
    from llmesh.services.emulator.settings import EmulatorSettings

    async def has_keys() -> bool:
        if missing_sqlite_file(config.database_url):
            return False  # no database yet: no keys, and nothing to create just to ask
        store = await open_key_store(config.database_url)
        try:
            return await store.has_keys()
        finally:
            await store.aclose()

    keys = bool(config.jwt_issuers) or asyncio.run(has_keys())  # tokens authenticate too
    for name, address in exposed:
        try:
            if name == "emulator":
                check_host(EmulatorSettings(host=address.rpartition(":")[0]))
            else:
                check_bind(address, keys, False, service=name)
        except ValueError as exc:
            return str(exc)
    return None


def _tls_problem(config: Config) -> str | None:
    """Why a service's TLS files (``tls``) cannot serve, found before any service starts."""
    from llmesh.services.common.tls import check_client, check_listener

    try:
        for name in ("orchestrator", "processor", "gateway"):
            tls = config.tls.service(name)
            check_listener(tls, name)
            check_client(tls, name)
    except ConfigError as exc:
        return str(exc)
    return None


def _worker_counts(config: Config, workers: int | None) -> dict[str, int]:
    """Processes per service: `workers` (``--workers``) for the orchestrator and the gateway,
    else their ``workers`` setting, else the number of cores; one for the others."""
    cores = default_workers()
    return {
        "orchestrator": workers or config.orchestrator_workers or cores,
        "gateway": workers or config.gateway_workers or cores,
    }


def _up(config: Config, config_path: str | None, workers: int | None = None) -> int:
    """Start each service's processes; stop them in order on Ctrl-C or SIGTERM.

    A worker that exits is started again (`WorkerGroup.watch`); a service that keeps
    crashing stops the mesh with one line and status 1.
    """
    plan: list[tuple[str, str, str]] = []
    if _needs_emulator(config):
        plan.append(
            ("emulator", f"{config.emulator.host}:{config.emulator.port}", config.emulator.url)
        )
    for name in ("orchestrator", "processor"):  # (mTLS) after the URL of a TLS listener
        address = getattr(config, f"{name}_address")
        plan.append((name, address, f"grpc://{address}{config.tls.service(name).label}"))
    gw = f"{config.gateway_host}:{config.gateway_port}"
    scheme = "https" if config.tls.service("gateway").serves_tls else "http"
    plan.append(("gateway", gw, f"{scheme}://{gw}"))
    from llmesh.gateway.settings import GatewaySettings, orchestrator_channels

    # each service may drain as long as the slowest one (the gateway's uvicorn waits its
    # own grace for open connections), plus a margin to exit, before it is killed
    stop_wait = max(config.shutdown_grace, GatewaySettings.from_config(config).shutdown_grace) + 5
    counts = _worker_counts(config, workers)
    refusal = (
        workers_problem(config, counts["orchestrator"])
        or _tls_problem(config)
        or _exposure_refusal(config, plan)
    )
    if refusal is not None:
        print(f"llmesh: {refusal}", file=sys.stderr, flush=True)
        return 1  # nothing started
    if any(_busy(name, address) for name, address, _ in plan):
        return 1  # nothing started
    base = _child_command(config, config_path)
    # the gateway opens channels enough to reach every orchestrator worker
    channels = orchestrator_channels(config, counts["orchestrator"])
    child_env = {**os.environ, "LLMESH_GATEWAY_ORCHESTRATOR_CHANNELS": str(channels)}
    groups: list[WorkerGroup] = []
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    def command(name: str, count: int) -> Callable[[int], list[str]]:
        if name not in WORKER_SERVICES:
            return lambda _: [*base, "serve", name]
        return lambda i: [*base, "serve", name, "--worker", f"{i}/{count}"]

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        for name, address, url in plan:
            if _busy(name, address):  # taken since the check above
                return 1
            count = counts.get(name, 1)
            group = WorkerGroup(
                name, count, command(name, count), preexec_fn=_die_with_parent, env=child_env
            )
            groups.append(group)
            failure = group.start()
            if failure is not None:
                print(f"llmesh: {failure} on {address}", file=sys.stderr, flush=True)
                return 1
            workers_note = f" ({count} workers)" if count > 1 else ""
            print(f"llmesh: {name:<12} {url}{workers_note}", flush=True)
        print("llmesh: mesh is up; Ctrl-C stops it", flush=True)
        while not stopping:
            for group in groups:
                failure = group.watch()
                if failure is not None:
                    print(f"llmesh: {failure}", file=sys.stderr, flush=True)
                    return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop_in_order(groups, stop_wait)
        print("llmesh: stopped", flush=True)


if __name__ == "__main__":
    main()
