"""A token issuer for tests: signing keys generated at test time, their JWKS, signed tokens.

`TokenIssuer` holds one key per algorithm (RSA 2048 for RS256, P-256 for ES256, Ed25519 for
EdDSA), publishes their public halves as a JWKS (in a file, or from `JwksServer`, a local
HTTP server), and signs tokens with any of them. `hs256_with_public_key` forges the classic
algorithm-confusion token: HMAC-SHA256 keyed with the issuer's public key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

ISSUER = "https://issuer.test/"
AUDIENCE = "llmesh-test"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def new_key(alg: str) -> PrivateKey:
    """A fresh private key for `alg` (RS256, ES256 or EdDSA)."""
    if alg == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(alg)


def public_jwk(key: PrivateKey, kid: str, alg: str) -> dict[str, Any]:
    """The public half of `key` as a JWK naming `kid` and `alg`."""
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public, as_dict=True)
    elif isinstance(public, ec.EllipticCurvePublicKey):
        jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        jwk = OKPAlgorithm.to_jwk(public, as_dict=True)
    return {**jwk, "kid": kid, "alg": alg, "use": "sig"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class TokenIssuer:
    """Signing keys by kid, each with its algorithm; `jwks` publishes the public halves."""

    issuer: str = ISSUER
    audience: str = AUDIENCE
    keys: dict[str, tuple[str, PrivateKey]] = field(default_factory=dict)

    def add(self, kid: str, alg: str, key: PrivateKey | None = None) -> PrivateKey:
        """Add (or replace) the key `kid`; a new one of `alg` unless `key` is given."""
        key = key or new_key(alg)
        self.keys[kid] = (alg, key)
        return key

    def jwks(self) -> dict[str, Any]:
        """The published key set."""
        return {"keys": [public_jwk(key, kid, alg) for kid, (alg, key) in self.keys.items()]}

    def write(self, path: Path) -> Path:
        """Write the key set to `path` (atomically, as a rotation would)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.jwks()))
        tmp.replace(path)
        return path

    def claims(self, **changes: Any) -> dict[str, Any]:
        """Valid claims for tenant ``acme``, subject ``alice``; `changes` override (None
        removes a claim)."""
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": "alice",
            "tenant": "acme",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
        }
        base.update(changes)
        return {k: v for k, v in base.items() if v is not None}

    def token(
        self,
        kid: str,
        *,
        key: PrivateKey | None = None,
        header_kid: str | None = None,
        **changes: Any,
    ) -> str:
        """A token signed with the key `kid` (or with `key`, of the same algorithm), its
        header naming `header_kid` (default: `kid`)."""
        alg, own = self.keys[kid]
        headers = {"kid": header_kid or kid}
        return jwt.encode(self.claims(**changes), key or own, algorithm=alg, headers=headers)

    def unsigned(self, kid: str, **changes: Any) -> str:
        """An ``alg: none`` token (no signature)."""
        header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": kid}).encode())
        payload = _b64(json.dumps(self.claims(**changes)).encode())
        return f"{header}.{payload}."

    def hs256_with_public_key(self, kid: str, **changes: Any) -> str:
        """An HS256 token whose HMAC secret is the public key of `kid` (PEM), as an attacker
        who read the JWKS would make it."""
        _, key = self.keys[kid]
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
        payload = _b64(json.dumps(self.claims(**changes)).encode())
        signing_input = f"{header}.{payload}".encode()
        signature = _b64(hmac.digest(pem, signing_input, hashlib.sha256))
        return f"{header}.{payload}.{signature}"


class JwksServer:
    """Serves an issuer's current key set at ``/jwks.json`` on a loopback port, counting
    requests."""

    def __init__(self, issuer: TokenIssuer) -> None:
        self.issuer = issuer
        self.requests = 0
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.requests += 1
                body = json.dumps(owner.issuer.jwks()).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/jwks.json"

    @contextmanager
    def running(self) -> Iterator[JwksServer]:
        """Serve in a thread while the block runs."""
        thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join()
