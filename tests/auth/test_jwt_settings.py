"""The ``auth.jwt`` section: read from the file and the environment, refused when unsafe."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmesh.services.common.auth_settings import JwtIssuer, parse_jwt
from llmesh.services.common.config import ConfigError, load_config

BASE = {"issuer": "https://issuer.test/", "audience": "llmesh", "jwks_file": "/etc/jwks.json"}


def test_absent_means_no_issuer() -> None:
    assert load_config(None, env={}).jwt_issuers == ()


def test_the_file_section(tmp_path: Path) -> None:
    path = tmp_path / "llmesh.yaml"
    path.write_text(
        "auth:\n"
        "  jwt:\n"
        "    issuer: https://issuer.test/\n"
        "    audience: llmesh\n"
        "    jwks_url: https://issuer.test/jwks.json\n"
        "    algorithms: [ES256]\n"
        "    leeway_seconds: 5\n"
        "    tenant_claim: org_id\n"
        "    tier_claim: plan\n"
        "    tiers: {free: 0, pro: 2}\n"
        "    max_tier: 1\n"
    )
    (issuer,) = load_config(path, env={}).jwt_issuers
    assert issuer == JwtIssuer(
        issuer="https://issuer.test/",
        audience="llmesh",
        jwks_url="https://issuer.test/jwks.json",
        algorithms=("ES256",),
        leeway_seconds=5.0,
        tenant_claim="org_id",
        tier_claim="plan",
        tiers={"free": 0, "pro": 2},
        max_tier=1,
    )
    assert (issuer.tier("pro"), issuer.tier("free"), issuer.tier(None)) == (1, 0, 0)


def test_the_environment_sets_or_overrides_the_only_issuer() -> None:
    env = {
        "LLMESH_JWT_ISSUER": "https://env.test/",
        "LLMESH_JWT_AUDIENCE": "aud",
        "LLMESH_JWT_JWKS_URL": "http://127.0.0.1:9/jwks.json",
        "LLMESH_JWT_ALGORITHMS": "RS256, EdDSA",
        "LLMESH_JWT_LEEWAY_SECONDS": "60",
        "LLMESH_JWT_TENANT_CLAIM": "org",
        "LLMESH_JWT_TIER_CLAIM": "tier",
    }
    (issuer,) = parse_jwt(None, env)
    assert (issuer.issuer, issuer.audience, issuer.jwks_url) == (
        "https://env.test/",
        "aud",
        "http://127.0.0.1:9/jwks.json",
    )
    assert issuer.algorithms == ("RS256", "EdDSA") and issuer.leeway_seconds == 60.0
    assert (issuer.tenant_claim, issuer.tier_claim) == ("org", "tier")
    (over,) = parse_jwt(BASE, {"LLMESH_JWT_JWKS_URL": "https://other.test/k"})
    assert (over.jwks_url, over.jwks_file) == ("https://other.test/k", "")
    assert over.issuer == BASE["issuer"]
    with pytest.raises(ConfigError, match="several issuers"):
        parse_jwt([BASE, {**BASE, "issuer": "b"}], {"LLMESH_JWT_AUDIENCE": "x"})


def test_several_issuers() -> None:
    issuers = parse_jwt([BASE, {**BASE, "issuer": "https://b.test/", "max_tier": 0}], {})
    assert [i.issuer for i in issuers] == ["https://issuer.test/", "https://b.test/"]
    with pytest.raises(ConfigError, match="each issuer may appear once"):
        parse_jwt([BASE, BASE], {})


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"algorithms": ["HS256"]}, r"auth\.jwt\.algorithms: \['HS256'\] not accepted"),
        ({"algorithms": ["none"]}, r"algorithms: \['none'\] not accepted"),
        ({"algorithms": []}, "algorithms"),
        ({"leeway_seconds": 301}, r"leeway_seconds: expected 0 to 300"),
        ({"leeway_seconds": -1}, "leeway_seconds"),
        ({"jwks_url": "https://x.test/k"}, "set exactly one"),
        ({"jwks_file": ""}, "set exactly one"),
        ({"jwks_file": "", "jwks_url": "http://issuer.test/k"}, "https"),
        ({"audience": ""}, "audience: expected a non-empty string"),
        ({"tiers": {"pro": -1}}, "tiers"),
        ({"max_tier": "high"}, "max_tier"),
        ({"colour": "red"}, r"unknown keys \['colour'\]"),
    ],
)
def test_unsafe_or_wrong_settings_are_refused(changes: dict[str, object], problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        parse_jwt({**BASE, **changes}, {})


def test_issuer_and_audience_are_required() -> None:
    with pytest.raises(ConfigError, match=r"auth\.jwt: missing \['audience'\]"):
        parse_jwt({"issuer": "i", "jwks_file": "f"}, {})
