"""Bearer tokens (JWT) from configured issuers, turned into the `Principal` they act for.

A token is accepted when it is signed with RS256, ES256 or EdDSA (as configured; ``none``
and HMAC never) by a key of its issuer's key set (`Jwks`), its ``iss`` is a configured
issuer, its ``aud`` names that issuer's audience, and ``exp`` (required), ``nbf`` and
``iat`` hold within the issuer's leeway. It must carry a subject and a tenant claim. It acts
for the tenant its tenant claim names, as key id ``jwt:<subject>`` (the ledger's key id),
at the priority tier its tier claim maps to (capped at the issuer's ``max_tier``).

A refusal is UNAUTHENTICATED with a reason saying why (``TOKEN_EXPIRED``,
``TOKEN_SIGNATURE_INVALID``, ...). Messages and logs never repeat the token or any part of
it; they name only what was expected (the configured issuer, audience, algorithms).

Checking a signature costs far more than the rest of a call's authentication, and a client
sends the same token on every call until it expires, so an accepted token is remembered (by
its SHA-256, at most `MAX_REMEMBERED` of them): a later call with it is answered from
memory while its ``exp`` (plus leeway) has not passed and its issuer's keys are the same,
unexpired set it was verified with. Refused tokens are not remembered.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from jwt import PyJWK

from llmesh.services.auth.jwks import Jwks, KeyUnknown
from llmesh.services.auth.keys import Principal, check_tenant
from llmesh.services.common.auth_settings import JwtIssuer
from llmesh.services.common.errors import LlmeshError, Reason
from llmesh.services.core.priority import token_ceiling

__all__ = ["JWT_KEY_PREFIX", "TokenVerifier", "looks_like_jwt"]

log = logging.getLogger(__name__)

JWT_KEY_PREFIX = "jwt:"
"""The key id of a token's caller is this followed by its subject."""

MAX_TOKEN_LENGTH = 16384
"""The longest token read; a longer one is refused as malformed before it is decoded."""

MAX_SUBJECT_LENGTH = 200
"""The longest subject accepted (it becomes a key id in the ledger and in metrics)."""

MAX_REMEMBERED = 4096
"""The most accepted tokens remembered (the oldest are forgotten first)."""

_JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
"""A compact JWS: three base64url segments, the header a JSON object (``{"`` is ``eyJ``)."""


def looks_like_jwt(token: str) -> bool:
    """True when a bearer credential has the shape of a JWT (and not of an llmesh key)."""
    return _JWT_RE.fullmatch(token) is not None


def _refused(reason: Reason, message: str) -> LlmeshError:
    return LlmeshError(reason, message)


@dataclass(frozen=True, slots=True)
class _Accepted:
    """A token verified earlier: who it acts for, until when, under which keys."""

    principal: Principal
    until: float
    """Wall-clock seconds: the token's ``exp`` plus its issuer's leeway."""
    keys: Jwks
    generation: int


class TokenVerifier:
    """Verifies bearer tokens against the configured issuers and their key sets."""

    def __init__(
        self,
        issuers: Sequence[JwtIssuer],
        *,
        key_sets: Mapping[str, Jwks] | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if not issuers:
            raise ValueError("a token verifier needs at least one issuer")
        self._issuers = {i.issuer: i for i in issuers}
        self._jwks = dict(key_sets or {})
        for issuer in issuers:
            self._jwks.setdefault(issuer.issuer, Jwks(issuer))
        self._wall = wall
        self._accepted: OrderedDict[bytes, _Accepted] = OrderedDict()

    def __repr__(self) -> str:
        return f"TokenVerifier(issuers={sorted(self._issuers)})"

    @classmethod
    def from_config(cls, issuers: Sequence[JwtIssuer]) -> TokenVerifier | None:
        """A verifier for `issuers`, or None when none is configured."""
        return cls(issuers) if issuers else None

    async def verify(self, token: str) -> Principal:
        """The principal `token` acts for, or `LlmeshError` saying why it is refused."""
        digest = hashlib.sha256(token.encode()).digest()
        known = self._accepted.get(digest)
        if known is not None:
            if self._wall() < known.until and known.keys.current() == known.generation:
                return known.principal
            del self._accepted[digest]
        try:
            principal, accepted = await self._verify(token)
        except LlmeshError as exc:
            log.info("refused a bearer token: %s", exc.reason.value)
            raise
        self._accepted[digest] = accepted
        if len(self._accepted) > MAX_REMEMBERED:
            self._accepted.popitem(last=False)
        return principal

    async def _verify(self, token: str) -> tuple[Principal, _Accepted]:
        if len(token) > MAX_TOKEN_LENGTH or not looks_like_jwt(token):
            raise _refused(Reason.TOKEN_MALFORMED, "malformed bearer token: not a JWT")
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise _refused(
                Reason.TOKEN_MALFORMED, "malformed bearer token: its header or claims do not decode"
            ) from None
        issuer = self._issuer_of(unverified)
        alg = header.get("alg")
        if alg not in issuer.algorithms:
            raise _refused(
                Reason.TOKEN_SIGNATURE_INVALID,
                "bearer token signed with an algorithm that is not accepted "
                f"(accepted: {', '.join(issuer.algorithms)})",
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _refused(Reason.TOKEN_MALFORMED, "malformed bearer token: its kid is not text")
        keys = self._jwks[issuer.issuer]
        try:
            key = await keys.key(kid)
        except KeyUnknown:
            raise _refused(
                Reason.TOKEN_KEY_UNKNOWN,
                f"bearer token signed with a key issuer {issuer.issuer} does not publish "
                "(unknown kid)",
            ) from None
        generation = keys.generation
        claims = self._decode(token, key, issuer)
        principal = self._principal(claims, issuer)
        until = float(claims["exp"]) + issuer.leeway_seconds
        return principal, _Accepted(principal, until, keys, generation)

    def _issuer_of(self, claims: Mapping[str, Any]) -> JwtIssuer:
        iss = claims.get("iss")
        found = self._issuers.get(iss) if isinstance(iss, str) else None
        if found is None:
            raise _refused(
                Reason.TOKEN_ISSUER_INVALID,
                "bearer token from an issuer that is not accepted "
                f"(accepted: {', '.join(sorted(self._issuers))})",
            )
        return found

    @staticmethod
    def _decode(token: str, key: PyJWK, issuer: JwtIssuer) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=list(issuer.algorithms),
                audience=issuer.audience,
                issuer=issuer.issuer,
                leeway=issuer.leeway_seconds,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise _refused(Reason.TOKEN_EXPIRED, "bearer token expired") from None
        except jwt.ImmatureSignatureError:
            raise _refused(
                Reason.TOKEN_NOT_YET_VALID, "bearer token not valid yet (nbf or iat in the future)"
            ) from None
        except jwt.InvalidAudienceError:
            raise _refused(
                Reason.TOKEN_AUDIENCE_INVALID,
                f"bearer token not meant for this service (expected audience {issuer.audience})",
            ) from None
        except jwt.InvalidIssuerError:
            raise _refused(
                Reason.TOKEN_ISSUER_INVALID,
                f"bearer token from an issuer that is not accepted (expected {issuer.issuer})",
            ) from None
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            raise _refused(
                Reason.TOKEN_SIGNATURE_INVALID, "bearer token signature does not verify"
            ) from None
        except jwt.MissingRequiredClaimError as exc:
            raise _refused(
                Reason.TOKEN_MALFORMED, f"malformed bearer token: no {exc.claim!r} claim"
            ) from None
        except jwt.PyJWTError:
            raise _refused(
                Reason.TOKEN_MALFORMED, "malformed bearer token: a claim has an invalid value"
            ) from None
        return claims

    @staticmethod
    def _principal(claims: Mapping[str, Any], issuer: JwtIssuer) -> Principal:
        subject = claims.get(issuer.subject_claim)
        if not isinstance(subject, str) or not subject:
            raise _refused(
                Reason.TOKEN_MALFORMED,
                f"malformed bearer token: no {issuer.subject_claim!r} claim",
            )
        if len(subject) > MAX_SUBJECT_LENGTH or not (subject.isascii() and subject.isprintable()):
            raise _refused(
                Reason.TOKEN_MALFORMED,
                f"malformed bearer token: the {issuer.subject_claim!r} claim is not "
                f"1-{MAX_SUBJECT_LENGTH} printable ASCII characters",
            )
        tenant = claims.get(issuer.tenant_claim)
        if not isinstance(tenant, str) or not tenant:
            raise _refused(
                Reason.TOKEN_MALFORMED, f"malformed bearer token: no {issuer.tenant_claim!r} claim"
            )
        if check_tenant(tenant) is not None:
            raise _refused(
                Reason.TOKEN_MALFORMED,
                f"malformed bearer token: the {issuer.tenant_claim!r} claim is not a valid "
                "tenant name",
            )
        tier = issuer.tier(claims.get(issuer.tier_claim)) if issuer.tier_claim else 0
        return Principal(
            tenant=tenant,
            key_id=JWT_KEY_PREFIX + subject,
            tier=tier,
            max_priority=token_ceiling(tier),
        )
