"""Turning `TlsSettings` into what servers and channels take: checked at start, naming the file.

Every function here reads the files it is given and checks them with the ``ssl`` module
before grpc or uvicorn sees them: a missing or unreadable file, a file with no PEM
certificate, or a key that does not belong to its certificate is a `TlsError` naming the
file and the key it came from, raised before anything listens, instead of a handshake that
fails later on every connection.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from llmesh.services.common.config_fields import ConfigError
from llmesh.services.common.tls_settings import TlsSettings

__all__ = [
    "TlsError",
    "channel",
    "channel_credentials",
    "check_client",
    "check_listener",
    "server_context",
    "server_credentials",
    "uvicorn_ssl",
]


class TlsError(ConfigError):
    """A TLS file is missing, unreadable, not PEM, or does not match its partner."""


def _read(path: str, key: str, service: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise TlsError(f"tls: the {service} cannot read {key} file {path}: {why}") from None


def _certificates(path: str, key: str, service: str) -> bytes:
    """The file's bytes, refused unless it holds at least one PEM certificate."""
    data = _read(path, key, service)
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        probe.load_verify_locations(cadata=data.decode("ascii", "replace"))
    except (ssl.SSLError, ValueError) as exc:
        raise TlsError(
            f"tls: {key} file {path} of the {service} holds no PEM certificate ({exc})"
        ) from None
    return data


def _load_pair(
    context: ssl.SSLContext, cert: str, key: str, names: tuple[str, str], service: str
) -> tuple[bytes, bytes]:
    """Load a certificate and its key into `context`; their bytes, for grpc."""
    cert_bytes = _certificates(cert, names[0], service)
    key_bytes = _read(key, names[1], service)
    try:
        context.load_cert_chain(cert, key, password=b"")
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            problem = f"does not match the certificate in {names[0]} file {cert}"
        else:
            problem = f"holds no usable (unencrypted PEM) private key ({exc.reason or exc})"
        raise TlsError(f"tls: {names[1]} file {key} of the {service} {problem}") from None
    return cert_bytes, key_bytes


def _listener(tls: TlsSettings, service: str) -> tuple[ssl.SSLContext, bytes, bytes, bytes | None]:
    assert tls.cert is not None and tls.key is not None, "only for a service that serves TLS"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    cert, key = _load_pair(context, tls.cert, tls.key, ("cert", "key"), service)
    client_ca = None
    if tls.client_ca is not None:
        client_ca = _certificates(tls.client_ca, "client_ca", service)
        context.load_verify_locations(cadata=client_ca.decode("ascii", "replace"))
        context.verify_mode = ssl.CERT_REQUIRED
    return context, cert, key, client_ca


def server_context(tls: TlsSettings, service: str) -> ssl.SSLContext:
    """The server side of an HTTP listener (the metrics ports): TLS 1.2 or later, and with
    ``client_ca`` a client certificate signed by it required."""
    return _listener(tls, service)[0]


def check_listener(tls: TlsSettings, service: str) -> None:
    """Raise `TlsError` when the listener files of `service` cannot serve (nothing if plain)."""
    if tls.serves_tls:
        _listener(tls, service)


def server_credentials(tls: TlsSettings, service: str) -> grpc.ServerCredentials:
    """A gRPC listener's credentials; with ``client_ca``, client certificates are required."""
    _, cert, key, client_ca = _listener(tls, service)
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def uvicorn_ssl(tls: TlsSettings, service: str) -> dict[str, Any]:
    """uvicorn's ``ssl_*`` options for an HTTP listener (none when plaintext)."""
    if not tls.serves_tls:
        return {}
    _listener(tls, service)  # checked here: uvicorn's own errors name no file
    options: dict[str, Any] = {"ssl_certfile": tls.cert, "ssl_keyfile": tls.key}
    if tls.client_ca is not None:
        options |= {"ssl_ca_certs": tls.client_ca, "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return options


def _client(tls: TlsSettings, service: str) -> tuple[bytes, bytes | None, bytes | None]:
    assert tls.ca is not None, "only for a service whose clients speak TLS"
    ca = _certificates(tls.ca, "ca", service)
    if tls.client_cert is None or tls.client_key is None:
        return ca, None, None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    names = ("client_cert", "client_key")
    cert, key = _load_pair(context, tls.client_cert, tls.client_key, names, service)
    return ca, cert, key


def check_client(tls: TlsSettings, service: str) -> None:
    """Raise `TlsError` when the client files of `service` are unusable (nothing if plain)."""
    if tls.dials_tls:
        _client(tls, service)


def channel_credentials(tls: TlsSettings, service: str) -> grpc.ChannelCredentials:
    """Credentials of a gRPC channel trusting ``ca``, presenting ``client_cert`` if set."""
    ca, cert, key = _client(tls, service)
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def channel(
    target: str,
    tls: TlsSettings | None,
    service: str,
    *,
    options: Sequence[tuple[str, Any]] = (),
    interceptors: Sequence[Any] | None = None,
) -> grpc.aio.Channel:
    """A channel to `target`: over TLS when `tls` has a ``ca``, else plaintext."""
    if tls is None or not tls.dials_tls:
        return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)
    extra = [] if tls.server_name is None else [("grpc.ssl_target_name_override", tls.server_name)]
    return grpc.aio.secure_channel(
        target,
        channel_credentials(tls, service),
        options=[*options, *extra],
        interceptors=interceptors,
    )
