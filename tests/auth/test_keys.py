"""The key format, the keyed hash, and the name rules."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from llmesh.services.auth.keys import (
    KeyInfo,
    Principal,
    check_name,
    check_tenant,
    format_key,
    hash_secret,
    is_key_id,
    new_key_id,
    new_secret,
    parse_key,
)


def test_new_keys_have_the_documented_shape() -> None:
    key_id, secret = new_key_id(), new_secret()
    assert is_key_id(key_id) and len(key_id) == 12
    assert len(secret) == 43  # 32 bytes of urlsafe base64, unpadded
    key = format_key(key_id, secret)
    assert key.startswith(f"llm_{key_id}_")
    assert parse_key(key) == (key_id, secret)


def test_secrets_are_random() -> None:
    assert len({new_secret() for _ in range(100)}) == 100
    assert len({new_key_id() for _ in range(100)}) == 100


def test_secrets_may_contain_underscores_and_still_parse() -> None:
    secret = "_" * 10 + "a-b" * 11
    assert parse_key(f"llm_0123456789ab_{secret}") == ("0123456789ab", secret)


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "llm_",
        "sk-0123456789ab_" + "a" * 43,
        "llm_0123456789AB_" + "a" * 43,  # key ids are lowercase hex
        "llm_0123456789a_" + "a" * 43,  # too short an id
        "llm_0123456789ab_" + "a" * 42,  # too short a secret
        "llm_0123456789ab_" + "a" * 42 + "=",
        "llm_0123456789ab_" + "a" * 42 + " ",
        " llm_0123456789ab_" + "a" * 43,
        "llm_0123456789ab_" + "a" * 129,
    ],
)
def test_malformed_keys_do_not_parse(presented: str) -> None:
    assert parse_key(presented) is None


def test_hash_is_hmac_sha256_bound_to_the_key_id() -> None:
    pepper = b"p" * 32
    digest = hash_secret(pepper, "0123456789ab", "s" * 43)
    expected = hmac.new(
        pepper, b"llmesh-api-key-v1:0123456789ab:" + b"s" * 43, hashlib.sha256
    ).digest()
    assert digest == expected and len(digest) == 32
    assert hash_secret(pepper, "ba9876543210", "s" * 43) != digest
    assert hash_secret(b"q" * 32, "0123456789ab", "s" * 43) != digest


@pytest.mark.parametrize("tenant", ["default", "acme", "a", "team-1.prod_eu", "A" * 128])
def test_valid_tenants(tenant: str) -> None:
    assert check_tenant(tenant) is None


@pytest.mark.parametrize("tenant", ["", "-acme", "a b", "acme\n", "é", "A" * 129, "a/b"])
def test_invalid_tenants(tenant: str) -> None:
    assert check_tenant(tenant)


def test_names() -> None:
    assert check_name("") is None
    assert check_name("alice's laptop") is None
    assert check_name("x" * 201)
    assert check_name("bad\nname")


def test_records_are_frozen_and_show_no_secret() -> None:
    principal = Principal("acme", "0123456789ab")
    with pytest.raises(AttributeError):
        principal.tenant = "other"  # type: ignore[misc]
    info = KeyInfo("0123456789ab", "acme", "ci", datetime.now(UTC))
    assert info.active
    assert set(KeyInfo.__dataclass_fields__) == {
        "key_id",
        "tenant",
        "name",
        "created_at",
        "revoked_at",
        "default_priority",
        "max_priority",
    }
