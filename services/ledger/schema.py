"""The ledger's tables, their ordered migrations, and records as table rows.

Both stores run the same migrations, in order, each once: `schema_version` holds one row
per applied version. A statement's ``{json}`` is the dialect's JSON column type (TEXT in
SQLite, JSONB in PostgreSQL); every other type name means the same in both. Migrations
are append-only: a released one is never edited, a change is a new version.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from llmesh.services.core.usage import CallStatus
from llmesh.services.ledger.queries import utc_day
from llmesh.services.ledger.records import UsageRecord
from llmesh.services.ledger.responses import RESPONSES_TABLE

__all__ = [
    "BATCH_TABLES",
    "COLUMNS",
    "INSTANCES_TABLE",
    "LATEST_VERSION",
    "MIGRATIONS",
    "STARTS_TABLE",
    "TABLE",
    "TEMPLATES_TABLE",
    "TEMPLATE_VERSIONS_TABLE",
    "TEMPLATE_WEIGHTS_TABLE",
    "Migration",
    "dumps",
    "pending",
    "record_from_row",
    "record_to_row",
    "upsert_sql",
]

TABLE = "usage_records"
"""The table holding one row per call."""

STARTS_TABLE = "call_starts"
"""Calls in flight whose request has left for a provider: the row each would get if its
process died now (status ``interrupted``, estimated usage), with the owning process. The
call's final record deletes it; `INSTANCES_TABLE` tells whether its owner still lives."""

INSTANCES_TABLE = "ledger_instances"
"""One row per running ledger writer: its lease, renewed by heartbeats, and where it runs."""

BATCH_TABLES = ("batch_files", "batches", "batch_items", "batch_native")
"""The batch jobs' tables (`llmesh.services.batch` reads and writes them): uploaded item
files, batches (state, owner, result sequence), one row per item (input, state, attempt
trail, result), and the providers' native batches a batch was submitted as."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: the statements that lead to it from the previous one."""

    version: int
    description: str
    statements: tuple[str, ...]

    def sql(self, json_type: str) -> list[str]:
        """The statements for a dialect whose JSON column type is `json_type`."""
        return [s.replace("{json}", json_type) for s in self.statements]


_RECORD_COLUMNS_V1 = (
    "request_id TEXT PRIMARY KEY",
    "ts DOUBLE PRECISION NOT NULL",
    "day TEXT NOT NULL",
    "tenant TEXT NOT NULL DEFAULT ''",
    "key_id TEXT NOT NULL DEFAULT ''",
    "user_name TEXT NOT NULL DEFAULT ''",
    "session TEXT NOT NULL DEFAULT ''",
    "route TEXT NOT NULL DEFAULT ''",
    "provider TEXT NOT NULL DEFAULT ''",
    "model TEXT NOT NULL DEFAULT ''",
    "attempts {json} NOT NULL",
    "input_tokens BIGINT NOT NULL DEFAULT 0",
    "output_tokens BIGINT NOT NULL DEFAULT 0",
    "cache_read_tokens BIGINT NOT NULL DEFAULT 0",
    "cache_write_tokens BIGINT NOT NULL DEFAULT 0",
    "reasoning_tokens BIGINT NOT NULL DEFAULT 0",
    "cost_usd DOUBLE PRECISION NOT NULL DEFAULT 0",
    "cache_savings_usd DOUBLE PRECISION NOT NULL DEFAULT 0",
    "ttft_ms DOUBLE PRECISION",
    "duration_ms DOUBLE PRECISION NOT NULL DEFAULT 0",
    "status TEXT NOT NULL",
    "error_reason TEXT",
    "usage_estimated BOOLEAN NOT NULL DEFAULT FALSE",
    "cache_hit BOOLEAN NOT NULL DEFAULT FALSE",
    "metadata {json} NOT NULL",
)
"""The column definitions of `TABLE` as version 1 created it. History, like the migrations
built from it: never edited; a new column is a new migration."""

_PRIORITY = "priority TEXT NOT NULL DEFAULT ''"
"""The column version 4 added to `TABLE`."""

_DOWNGRADED_FROM = "downgraded_from TEXT NOT NULL DEFAULT ''"
"""The column version 5 added to `TABLE`."""

_TEMPLATE = ("template TEXT NOT NULL DEFAULT ''", "template_version INTEGER NOT NULL DEFAULT 0")
"""The columns version 7 added to `TABLE` and `STARTS_TABLE`."""

_TRACE_ID = "trace_id TEXT NOT NULL DEFAULT ''"
"""The column version 9 added to `TABLE` and `STARTS_TABLE`."""

TEMPLATES_TABLE = "templates"
"""One row per prompt template (`llmesh.services.templates`)."""
TEMPLATE_VERSIONS_TABLE = "template_versions"
"""One row per immutable template version: its text, variables and parameters as JSON."""
TEMPLATE_WEIGHTS_TABLE = "template_weights"
"""A template's A/B weights: one row per weighted version."""


def _create_table(name: str, columns: Sequence[str]) -> str:
    """CREATE TABLE `name` with the column definitions `columns`, laid out as the released
    migrations spell it (so their SQL stays the same text)."""
    body = ",\n                ".join(columns)
    return f"CREATE TABLE {name} (\n                {body}\n            )"


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "usage_records: one row per call",
        (
            _create_table(TABLE, _RECORD_COLUMNS_V1),
            f"CREATE INDEX {TABLE}_ts ON {TABLE} (ts)",
        ),
    ),
    Migration(
        2,
        "indexes for usage totals by tenant and by day",
        (
            f"CREATE INDEX {TABLE}_tenant_ts ON {TABLE} (tenant, ts)",
            f"CREATE INDEX {TABLE}_day ON {TABLE} (day)",
        ),
    ),
    Migration(
        3,
        "stored_responses: the Responses API's stored responses, by tenant, with an expiry",
        (
            f"""CREATE TABLE {RESPONSES_TABLE} (
                response_id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                body {{json}} NOT NULL
            )""",
            f"CREATE INDEX {RESPONSES_TABLE}_expires ON {RESPONSES_TABLE} (expires_at)",
        ),
    ),
    Migration(
        4,
        "usage_records.priority: the priority tier each call ran at",
        (f"ALTER TABLE {TABLE} ADD COLUMN {_PRIORITY}",),
    ),
    Migration(
        5,
        "usage_records.downgraded_from: the targets a budget downgrade switched away from",
        (f"ALTER TABLE {TABLE} ADD COLUMN {_DOWNGRADED_FROM}",),
    ),
    Migration(
        6,
        "call_starts and ledger_instances: calls in flight, closed as interrupted if their "
        "process dies",
        (
            _create_table(
                STARTS_TABLE,
                (*_RECORD_COLUMNS_V1, _PRIORITY, _DOWNGRADED_FROM, "owner TEXT NOT NULL"),
            ),
            f"CREATE INDEX {STARTS_TABLE}_owner ON {STARTS_TABLE} (owner)",
            f"""CREATE TABLE {INSTANCES_TABLE} (
                instance_id TEXT PRIMARY KEY,
                host TEXT NOT NULL,
                node TEXT NOT NULL,
                pid BIGINT NOT NULL,
                started_at DOUBLE PRECISION NOT NULL,
                lease_until DOUBLE PRECISION NOT NULL
            )""",
        ),
    ),
    Migration(
        7,
        "prompt templates, their versions and A/B weights; the template and version of each call",
        (
            *(f"ALTER TABLE {t} ADD COLUMN {c}" for t in (TABLE, STARTS_TABLE) for c in _TEMPLATE),
            f"CREATE INDEX {TABLE}_template ON {TABLE} (template, ts)",
            f"""CREATE TABLE {TEMPLATES_TABLE} (
                name TEXT PRIMARY KEY,
                created_at DOUBLE PRECISION NOT NULL
            )""",
            f"""CREATE TABLE {TEMPLATE_VERSIONS_TABLE} (
                name TEXT NOT NULL REFERENCES {TEMPLATES_TABLE} (name),
                version INTEGER NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                description TEXT NOT NULL DEFAULT '',
                body {{json}} NOT NULL,
                PRIMARY KEY (name, version)
            )""",
            f"""CREATE TABLE {TEMPLATE_WEIGHTS_TABLE} (
                name TEXT NOT NULL REFERENCES {TEMPLATES_TABLE} (name),
                version INTEGER NOT NULL,
                weight DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (name, version)
            )""",
        ),
    ),
    Migration(
        8,
        "batch jobs: uploaded item files, batches, their items and results, native batches",
        (
            """CREATE TABLE batch_files (
                file_id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                filename TEXT NOT NULL,
                bytes BIGINT NOT NULL,
                item_count INTEGER NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                content TEXT NOT NULL
            )""",
            """CREATE TABLE batches (
                batch_id TEXT PRIMARY KEY,
                tenant TEXT NOT NULL,
                key_id TEXT NOT NULL DEFAULT '',
                state TEXT NOT NULL,
                mode TEXT NOT NULL,
                metadata TEXT NOT NULL,
                input_file_id TEXT NOT NULL DEFAULT '',
                created_at DOUBLE PRECISION NOT NULL,
                started_at DOUBLE PRECISION,
                finished_at DOUBLE PRECISION,
                status_detail TEXT NOT NULL DEFAULT '',
                owner TEXT NOT NULL DEFAULT '',
                next_seq BIGINT NOT NULL DEFAULT 0,
                total INTEGER NOT NULL
            )""",
            "CREATE INDEX batches_tenant_created ON batches (tenant, created_at)",
            "CREATE INDEX batches_state ON batches (state)",
            """CREATE TABLE batch_items (
                batch_id TEXT NOT NULL,
                custom_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                input TEXT NOT NULL,
                state TEXT NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                trail TEXT NOT NULL DEFAULT '[]',
                result TEXT,
                result_seq BIGINT,
                native_batch TEXT NOT NULL DEFAULT '',
                updated_at DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (batch_id, custom_id)
            )""",
            "CREATE INDEX batch_items_state ON batch_items (batch_id, state, position)",
            "CREATE INDEX batch_items_seq ON batch_items (batch_id, result_seq)",
            """CREATE TABLE batch_native (
                batch_id TEXT NOT NULL,
                provider_batch_id TEXT NOT NULL,
                provider TEXT NOT NULL,
                state TEXT NOT NULL,
                PRIMARY KEY (batch_id, provider_batch_id)
            )""",
        ),
    ),
    Migration(
        9,
        "usage_records.trace_id: the W3C trace id of each call, to find its trace",
        tuple(f"ALTER TABLE {t} ADD COLUMN {_TRACE_ID}" for t in (TABLE, STARTS_TABLE)),
    ),
)
"""Every migration, in version order."""

LATEST_VERSION = MIGRATIONS[-1].version
"""The schema version this code writes."""

COLUMNS: tuple[str, ...] = (
    "request_id",
    "ts",
    "day",
    "tenant",
    "key_id",
    "user_name",
    "session",
    "route",
    "provider",
    "model",
    "attempts",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "cache_savings_usd",
    "ttft_ms",
    "duration_ms",
    "status",
    "error_reason",
    "usage_estimated",
    "cache_hit",
    "metadata",
    "priority",
    "downgraded_from",
    "template",
    "template_version",
    "trace_id",
)
"""The columns of `TABLE`, in the order of `record_to_row`."""


def pending(current: int) -> list[Migration]:
    """The migrations after version `current`; raises if the database is newer than the code."""
    if current > LATEST_VERSION:
        raise RuntimeError(
            f"the usage ledger is at schema version {current}, newer than this llmesh "
            f"({LATEST_VERSION}); upgrade llmesh"
        )
    return [m for m in MIGRATIONS if m.version > current]


def _json_default(value: Any) -> Any:
    if hasattr(value, "value"):  # an enum
        return value.value
    return str(value)


def dumps(value: Any) -> str:
    """JSON text for a JSON column; anything orjson cannot encode natively becomes a string."""
    try:
        return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps(repr(value)).decode()


def upsert_sql(placeholder: Sequence[str]) -> str:
    """INSERT of one row that replaces an existing row with the same request_id."""
    updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
    return (
        f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({', '.join(placeholder)}) "
        f"ON CONFLICT (request_id) DO UPDATE SET {updates}"
    )


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def record_to_row(rec: UsageRecord) -> tuple[Any, ...]:
    """A record as a row of `COLUMNS`, with every value coerced to its column's type."""
    return (
        str(rec.request_id),
        float(rec.ts),
        utc_day(rec.ts),
        str(rec.tenant),
        str(rec.key_id),
        str(rec.user),
        str(rec.session),
        str(rec.route),
        str(rec.provider),
        str(rec.model),
        dumps(rec.attempts),
        int(rec.input_tokens),
        int(rec.output_tokens),
        int(rec.cache_read_tokens),
        int(rec.cache_write_tokens),
        int(rec.reasoning_tokens),
        _finite(float(rec.cost_usd)),
        _finite(float(rec.cache_savings_usd)),
        float(rec.ttft_ms) if rec.ttft_ms is not None else None,
        float(rec.duration_ms),
        rec.status.value,
        str(rec.error_reason) if rec.error_reason is not None else None,
        bool(rec.usage_estimated),
        bool(rec.cache_hit),
        dumps({str(k): str(v) for k, v in rec.metadata.items()}),
        str(rec.priority),
        str(rec.downgraded_from),
        str(rec.template),
        int(rec.template_version),
        str(rec.trace_id),
    )


def record_from_row(row: Sequence[Any]) -> UsageRecord:
    """The record a row of `COLUMNS` holds."""
    v = dict(zip(COLUMNS, row, strict=True))
    attempts = v["attempts"]
    metadata = v["metadata"]
    return UsageRecord(
        request_id=v["request_id"],
        ts=float(v["ts"]),
        tenant=v["tenant"],
        key_id=v["key_id"],
        user=v["user_name"],
        session=v["session"],
        route=v["route"],
        provider=v["provider"],
        model=v["model"],
        attempts=orjson.loads(attempts) if isinstance(attempts, str) else attempts,
        input_tokens=int(v["input_tokens"]),
        output_tokens=int(v["output_tokens"]),
        cache_read_tokens=int(v["cache_read_tokens"]),
        cache_write_tokens=int(v["cache_write_tokens"]),
        reasoning_tokens=int(v["reasoning_tokens"]),
        cost_usd=float(v["cost_usd"]),
        cache_savings_usd=float(v["cache_savings_usd"]),
        ttft_ms=v["ttft_ms"],
        duration_ms=float(v["duration_ms"]),
        status=CallStatus(v["status"]),
        error_reason=v["error_reason"],
        usage_estimated=bool(v["usage_estimated"]),
        cache_hit=bool(v["cache_hit"]),
        metadata=orjson.loads(metadata) if isinstance(metadata, str) else metadata,
        priority=v["priority"],
        downgraded_from=v["downgraded_from"],
        template=v["template"],
        template_version=int(v["template_version"]),
        trace_id=v["trace_id"],
    )
