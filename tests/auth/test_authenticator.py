"""From call metadata to a principal: header parsing, refusals, and what messages reveal."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from llmesh.services.auth import Authenticator, KeyStore, Principal, open_key_store
from llmesh.services.auth.authenticator import Metadata
from llmesh.services.auth.store import StoredKey
from llmesh.services.common.errors import LlmeshError, Reason


@pytest.fixture
async def memory_store() -> AsyncIterator[KeyStore]:
    store = await open_key_store("sqlite:///:memory:")
    try:
        yield store
    finally:
        await store.aclose()


@pytest.fixture
async def issued(memory_store: KeyStore) -> tuple[str, str]:
    """A key of tenant ``acme``: (key_id, full key)."""
    info, key = await memory_store.create("acme", "test")
    return info.key_id, key


def _secret(key: str) -> str:
    return key.split("_", 2)[2]


async def _refused(auth: Authenticator, metadata: Metadata, reason: Reason) -> LlmeshError:
    with pytest.raises(LlmeshError) as caught:
        await auth.authenticate(metadata)
    assert caught.value.reason is reason
    return caught.value


def _reveals_nothing(error: LlmeshError, *secrets: str) -> None:
    texts = [str(error), repr(error), error.message, str(error.metadata)]
    for secret in secrets:
        for text in texts:
            assert secret not in text


# Authentication off


async def test_off_uses_the_tenant_header_or_default() -> None:
    auth = Authenticator(None, required=False)
    assert await auth.authenticate([]) == Principal("default", "")
    assert await auth.authenticate([("x-llmesh-tenant", "acme")]) == Principal("acme", "")
    assert await auth.authenticate([("X-LLMESH-TENANT", b"beta")]) == Principal("beta", "")
    assert await auth.authenticate([("x-llmesh-tenant", "  ")]) == Principal("default", "")
    assert not auth.required


async def test_off_ignores_any_bearer(memory_store: KeyStore) -> None:
    auth = Authenticator(memory_store, required=False)
    metadata = [("authorization", "Bearer nonsense"), ("x-llmesh-tenant", "acme")]
    assert await auth.authenticate(metadata) == Principal("acme", "")


async def test_off_rejects_a_bad_tenant_header() -> None:
    auth = Authenticator(None, required=False)
    error = await _refused(auth, [("x-llmesh-tenant", "a b")], Reason.INVALID_REQUEST)
    assert "x-llmesh-tenant" in error.message
    await _refused(
        auth, [("x-llmesh-tenant", "a"), ("x-llmesh-tenant", "b")], Reason.INVALID_REQUEST
    )
    await _refused(auth, [("x-llmesh-tenant", b"\xff")], Reason.INVALID_REQUEST)


async def test_off_switches_on_for_good_once_a_key_exists(memory_store: KeyStore) -> None:
    auth = Authenticator(
        memory_store, required=False, on_when_keys_exist=True, key_check_interval=0.0
    )
    assert await auth.authenticate([]) == Principal("default", "")
    assert not auth.required
    info, key = await memory_store.create("acme")
    await _refused(auth, [], Reason.UNAUTHENTICATED)
    assert auth.required
    bearer = [("authorization", f"Bearer {key}")]
    assert await auth.authenticate(bearer) == Principal("acme", info.key_id)
    assert await memory_store.revoke(info.key_id)  # the last key: everyone is locked out
    await _refused(auth, [], Reason.UNAUTHENTICATED)
    await _refused(auth, bearer, Reason.UNAUTHENTICATED)


async def test_keys_are_looked_for_at_most_once_an_interval(memory_store: KeyStore) -> None:
    auth = Authenticator(
        memory_store, required=False, on_when_keys_exist=True, key_check_interval=3600.0
    )
    assert await auth.authenticate([]) == Principal("default", "")
    await memory_store.create("acme")
    assert await auth.authenticate([]) == Principal("default", "")  # until the next check


async def test_a_store_that_cannot_answer_leaves_authentication_as_it_was(
    memory_store: KeyStore, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def down() -> bool:
        raise OSError("connection refused")

    monkeypatch.setattr(memory_store, "has_keys", down)
    auth = Authenticator(
        memory_store, required=False, on_when_keys_exist=True, key_check_interval=0.0
    )
    with caplog.at_level(logging.WARNING):
        assert await auth.authenticate([]) == Principal("default", "")
    assert "cannot tell whether API keys exist" in caplog.text
    assert not auth.required


def test_watching_for_keys_needs_a_store() -> None:
    with pytest.raises(ValueError, match="needs a key store"):
        Authenticator(None, required=False, on_when_keys_exist=True)


def test_required_needs_a_store() -> None:
    with pytest.raises(ValueError, match="no key store"):
        Authenticator(None, required=True)


# Authentication on


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER", "bEaReR"])
@pytest.mark.parametrize("header", ["authorization", "Authorization", "AUTHORIZATION"])
async def test_bearer_scheme_and_header_are_case_insensitive(
    memory_store: KeyStore, issued: tuple[str, str], scheme: str, header: str
) -> None:
    key_id, key = issued
    auth = Authenticator(memory_store, required=True)
    assert await auth.authenticate([(header, f"{scheme} {key}")]) == Principal("acme", key_id)


async def test_bytes_values_and_surrounding_space(
    memory_store: KeyStore, issued: tuple[str, str]
) -> None:
    key_id, key = issued
    auth = Authenticator(memory_store, required=True)
    metadata: Metadata = [("user-agent", "x"), ("authorization", f"  Bearer   {key} ".encode())]
    assert await auth.authenticate(metadata) == Principal("acme", key_id)


async def test_tenant_header_must_match_the_key(
    memory_store: KeyStore, issued: tuple[str, str]
) -> None:
    key_id, key = issued
    auth = Authenticator(memory_store, required=True)
    bearer = ("authorization", f"Bearer {key}")
    assert await auth.authenticate([bearer, ("x-llmesh-tenant", "acme")]) == Principal(
        "acme", key_id
    )
    error = await _refused(auth, [bearer, ("x-llmesh-tenant", "beta")], Reason.PERMISSION_DENIED)
    assert key_id in error.message and "beta" in error.message
    _reveals_nothing(error, _secret(key))


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ([], "missing API key"),
        ([("x-llmesh-tenant", "acme")], "missing API key"),
        ([("authorization", "")], "malformed authorization header"),
        ([("authorization", "Bearer")], "malformed authorization header"),
        ([("authorization", "Bearer a b")], "malformed authorization header"),
        ([("authorization", "Basic dXNlcjpwYXNz")], "malformed authorization header"),
        ([("authorization", b"Bearer \xff\xfe")], "malformed authorization header"),
        ([("authorization", "Bearer a"), ("authorization", "Bearer b")], "more than one"),
        ([("authorization", "Bearer sk-proj-abcdef")], "malformed API key"),
    ],
)
async def test_missing_or_malformed_credentials(
    memory_store: KeyStore, metadata: Metadata, expected: str
) -> None:
    auth = Authenticator(memory_store, required=True)
    error = await _refused(auth, metadata, Reason.UNAUTHENTICATED)
    assert expected in error.message
    assert "dXNlcjpwYXNz" not in error.message and "sk-proj" not in error.message


async def test_a_key_without_scheme_is_not_echoed(
    memory_store: KeyStore, issued: tuple[str, str]
) -> None:
    _, key = issued
    auth = Authenticator(memory_store, required=True)
    error = await _refused(auth, [("authorization", key)], Reason.UNAUTHENTICATED)
    _reveals_nothing(error, _secret(key))


async def test_wrong_tampered_unknown_and_revoked_keys(
    memory_store: KeyStore, issued: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key_id, key = issued
    other_info, other_key = await memory_store.create("acme")
    secret = _secret(key)
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    presented = [
        tampered,
        f"llm_{key_id}_{_secret(other_key)}",
        f"llm_0123456789ab_{secret}",
    ]
    auth = Authenticator(memory_store, required=True)
    await auth.authenticate([("authorization", f"Bearer {key}")])  # cache the real key
    for candidate in presented:
        error = await _refused(
            auth, [("authorization", f"Bearer {candidate}")], Reason.UNAUTHENTICATED
        )
        assert "invalid API key" in error.message
        _reveals_nothing(error, secret, _secret(candidate), candidate)
    await memory_store.revoke(other_info.key_id)
    error = await _refused(auth, [("authorization", f"Bearer {other_key}")], Reason.UNAUTHENTICATED)
    assert other_info.key_id in error.message and error.metadata == {"key_id": other_info.key_id}
    _reveals_nothing(error, _secret(other_key))
    assert secret not in caplog.text and _secret(other_key) not in caplog.text


async def test_repr_shows_no_secret(memory_store: KeyStore, issued: tuple[str, str]) -> None:
    _, key = issued
    auth = Authenticator(memory_store, required=True)
    assert repr(auth) == "Authenticator(store=SqliteKeyStore(sqlite:///:memory:), required=True)"
    assert _secret(key) not in repr(auth)


async def test_a_cached_authentication_reads_no_database(
    memory_store: KeyStore, issued: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, key = issued
    auth = Authenticator(memory_store, required=True)
    metadata: Metadata = [("content-type", "application/grpc"), ("authorization", f"Bearer {key}")]
    first = await auth.authenticate(metadata)
    lookups: list[str] = []

    async def counted(key_id: str) -> StoredKey | None:
        lookups.append(key_id)
        return None

    monkeypatch.setattr(memory_store, "_lookup", counted)
    for _ in range(100):
        assert await auth.authenticate(metadata) == first
    assert lookups == []  # answered from the store's cache every time
