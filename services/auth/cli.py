"""``llmesh keys create|list|revoke``: manage API keys from the terminal.

`keys_command` does the work and returns ``(exit_code, text)``; the ``llmesh`` entry point
only parses arguments and prints. Exit codes: 0 done, 1 nothing to revoke or the store
cannot be opened, 2 a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from llmesh.services.auth.keys import KEY_PREFIX, KeyInfo, is_key_id
from llmesh.services.auth.store import DEFAULT_CACHE_TTL, KeyStore, open_key_store, redact_url
from llmesh.services.common.sqlite import missing_sqlite_file
from llmesh.services.core.priority import NAMES, Priority, parse_priority

ACTIONS = ("create", "list", "revoke")
"""The subcommands of ``llmesh keys``."""

WARNING = "Store this key now: it cannot be shown again (llmesh keeps only a hash of it)."
"""Printed with every new key."""

USE = (
    "Send it as the header 'authorization: Bearer <key>'; llmesh chat and llmesh models "
    "take it with --api-key or $LLMESH_API_KEY."
)
"""How a new key is used, printed with it."""

FIRST_KEY = (
    "This is the first API key in {store}: authentication is now on for every tenant. "
    "Running servers using this store start refusing calls without a valid key within "
    "{ttl:g} seconds (no restart needed); servers started from now on require one."
)
"""Printed with the first key a store ever holds."""

MORE_KEYS = "Authentication was already on: this key works at once, no restart needed."
"""Printed with every later key."""

NO_ACTIVE_KEY = (
    "No active API key is left in {store}. Authentication stays on (revoked keys still "
    "count), so every call is refused until a new key is created with "
    "'llmesh keys create --tenant NAME'; that key works at once, no restart needed."
)
"""Printed when a revoke leaves no active key."""


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _as_dict(info: KeyInfo) -> dict[str, Any]:
    return {
        "key_id": info.key_id,
        "tenant": info.tenant,
        "name": info.name,
        "created_at": _iso(info.created_at),
        "revoked_at": _iso(info.revoked_at),
        "active": info.active,
        "default_priority": None if info.default_priority is None else info.default_priority.label,
        "max_priority": info.ceiling.label,
    }


def _table(keys: list[KeyInfo]) -> str:
    if not keys:
        return "No API keys."
    header = ("KEY ID", "TENANT", "NAME", "PRIORITY", "CREATED", "STATUS")
    rows = [
        (
            k.key_id,
            k.tenant,
            k.name or "-",
            f"{'-' if k.default_priority is None else k.default_priority.label}"
            f" (max {k.ceiling.label})",
            k.created_at.strftime("%Y-%m-%d %H:%M:%SZ"),
            "active" if k.revoked_at is None else f"revoked {k.revoked_at:%Y-%m-%d %H:%M:%SZ}",
        )
        for k in keys
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    head = "  ".join(c.ljust(w) for c, w in zip(header, widths, strict=True)).rstrip()
    return "\n".join([head, *lines])


def _key_id_of(value: str) -> str | None:
    """The key id in ``value``: a bare id, or a full key (only its public part is used)."""
    value = value.strip()
    if value.startswith(KEY_PREFIX):
        value = value[len(KEY_PREFIX) :].partition("_")[0]
    return value if is_key_id(value) else None


def _tier(option: str, value: str | None) -> Priority | None:
    """The tier an option names (None when not given); ValueError naming the option."""
    if value is None:
        return None
    tier = parse_priority(value)
    if tier is None:
        raise ValueError(f"{option}: expected one of {NAMES}, got {value!r}")
    return tier


async def _create(
    store: KeyStore,
    tenant: str | None,
    name: str,
    as_json: bool,
    tiers: tuple[str | None, str | None] = (None, None),
) -> tuple[int, str]:
    if not tenant:
        return 2, "llmesh keys create: --tenant is required"
    try:
        default, ceiling = _tier("--priority", tiers[0]), _tier("--max-priority", tiers[1])
    except ValueError as exc:
        return 2, f"llmesh keys create: {exc}"
    first = not await store.has_keys()
    try:
        info, key = await store.create(tenant, name, default_priority=default, max_priority=ceiling)
    except ValueError as exc:
        return 2, f"llmesh keys create: {exc}"
    if as_json:
        doc = {**_as_dict(info), "key": key, "warning": WARNING, "first_key": first}
        return 0, json.dumps(doc, indent=2)
    label = f" ({info.name})" if info.name else ""
    change = FIRST_KEY.format(store=store.describe(), ttl=DEFAULT_CACHE_TTL) if first else MORE_KEYS
    return 0, "\n".join(
        [
            f"Created API key {info.key_id}{label} for tenant {info.tenant}:",
            "",
            f"    {key}",
            "",
            WARNING,
            USE,
            change,
        ]
    )


async def _list(store: KeyStore, tenant: str | None, as_json: bool) -> tuple[int, str]:
    keys = await store.list(tenant)
    if as_json:
        return 0, json.dumps([_as_dict(k) for k in keys], indent=2)
    return 0, _table(keys)


async def _revoke(store: KeyStore, wanted: str, as_json: bool) -> tuple[int, str]:
    revoked = await store.revoke(wanted)
    active = sum(1 for k in await store.list() if k.active)
    if as_json:
        doc = {"key_id": wanted, "revoked": revoked, "active_keys": active}
        return (0 if revoked else 1), json.dumps(doc)
    if not revoked:
        return 1, f"No active API key {wanted} (unknown or already revoked)."
    lines = [
        f"Revoked API key {wanted}. Running servers refuse it within "
        f"{DEFAULT_CACHE_TTL:g} seconds (no restart needed)."
    ]
    if not active:
        lines.append(NO_ACTIVE_KEY.format(store=store.describe()))
    return 0, "\n".join(lines)


async def _missing_sqlite_file(store_url: str) -> str | None:
    """The file of a ``sqlite:///`` URL when it does not exist, else None."""
    return await asyncio.to_thread(missing_sqlite_file, store_url)


async def keys_command(
    store_url: str,
    action: str,
    *,
    tenant: str | None,
    name: str,
    key_id: str | None,
    json_output: bool,
    default_priority: str | None = None,
    max_priority: str | None = None,
) -> tuple[int, str]:
    """Run ``llmesh keys <action>`` against the store at ``store_url``; return (exit code, text)."""
    if action not in ACTIONS:
        return 2, f"llmesh keys: unknown action {action!r}; use one of {', '.join(ACTIONS)}"
    wanted = _key_id_of(key_id or "")
    if action == "revoke" and wanted is None:
        return 2, "llmesh keys revoke: give the KEY_ID shown by 'llmesh keys list' (12 hex digits)"
    missing = await _missing_sqlite_file(store_url)
    if missing and action != "create":  # only a new key creates the database
        return 1, (
            f"llmesh keys: no key store at {missing}: no key was ever created there. "
            "'llmesh keys create' creates it; if the mesh uses another database, pass the "
            "same --config or LLMESH_DATABASE_URL."
        )
    try:
        store = await open_key_store(store_url)
    except ValueError as exc:
        return 2, f"llmesh keys: {exc}"
    except Exception as exc:  # the driver's own errors (refused, no such database, ...)
        return 1, f"llmesh keys: cannot open the key store {redact_url(store_url)}: {exc}"
    try:
        if action == "create":
            return await _create(store, tenant, name, json_output, (default_priority, max_priority))
        if action == "list":
            return await _list(store, tenant, json_output)
        assert wanted is not None
        return await _revoke(store, wanted, json_output)
    finally:
        await store.aclose()


def keys_main(store_url: str, args: argparse.Namespace) -> int:
    """Run ``llmesh keys`` with its parsed `args`, printing its text; the exit code."""
    status, text = asyncio.run(
        keys_command(
            store_url,
            args.action,
            tenant=getattr(args, "tenant", None),
            name=getattr(args, "name", ""),
            key_id=getattr(args, "key_id", None),
            default_priority=getattr(args, "priority", None),
            max_priority=getattr(args, "max_priority", None),
            json_output=getattr(args, "json", False),
        )
    )
    print(text)
    return status
