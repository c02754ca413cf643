"""State that every `rag serve` process must see alike, kept in PostgreSQL when the index is there (RAG_STORE): the
per-user rate-limit counters, the logs of questions and votes (the administrators' 反馈与未答 view reads them), each
person's saved conversations, the key browsers' ids are sealed with, and the uploaded originals (so that any process
shows a PDF's page images, whichever machine received the file).

With several processes behind a balancer, a limit of 30 a minute stays 30 (not 30 per process), and a vote cast
through one process is in the review another process shows. On the embedded store (one machine, one process) the
same interfaces live in memory and in JSONL files (rag/web/auth.py RateLimiter, rag/web/feedback.py JsonLog).
"""

from __future__ import annotations

import json
import time

from rag.settings import Settings
from rag.store.backends import backend_for

SCHEMA = """
CREATE TABLE IF NOT EXISTS rag_log (id bigserial PRIMARY KEY, kind text NOT NULL, record jsonb NOT NULL);
CREATE INDEX IF NOT EXISTS rag_log_kind ON rag_log (kind, id);
CREATE TABLE IF NOT EXISTS rag_rate (client text NOT NULL, minute bigint NOT NULL, hits int NOT NULL,
                                     PRIMARY KEY (client, minute));
CREATE TABLE IF NOT EXISTS rag_conversations (owner text PRIMARY KEY, payload jsonb NOT NULL);
CREATE TABLE IF NOT EXISTS rag_secrets (name text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS rag_originals (doc_id text PRIMARY KEY, file text NOT NULL, content bytea NOT NULL);
"""
_READY: set[str] = set()


def connection(settings: Settings):
    """A pooled connection to the shared database (the index's own pool), its tables created on first use."""
    ensure_schema(settings)
    return _connection(settings)


def secret(settings: Settings, name: str, make) -> str:
    """A value every process must agree on (the key browsers' ids are sealed with): the first process to ask stores
    `make()`, every other reads it."""
    with connection(settings) as conn:
        conn.execute("INSERT INTO rag_secrets (name, value) VALUES (%s, %s) ON CONFLICT DO NOTHING", (name, make()))
        value = conn.execute("SELECT value FROM rag_secrets WHERE name = %s", (name,)).fetchone()[0]
        conn.commit()
    return value


def _connection(settings: Settings):
    backend = backend_for(settings)
    return backend.connection()  # type: ignore[attr-defined]  # PgBackend's pooled connection


def ensure_schema(settings: Settings) -> None:
    if settings.store in _READY:
        return
    with _connection(settings) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('rag_shared_schema'))")
        conn.execute(SCHEMA)
        conn.commit()
    _READY.add(settings.store)


def shared(settings: Settings) -> bool:
    """Is the state shared through the database (RAG_STORE is PostgreSQL)?"""
    return settings.store not in ("", "embedded")


def keep_originals(settings: Settings, files: list[tuple[str, str, bytes]]) -> None:
    """(doc_id, file name, bytes) of documents just added: their originals, for every process."""
    with connection(settings) as conn:
        for doc_id, name, raw in files:
            conn.execute("INSERT INTO rag_originals (doc_id, file, content) VALUES (%s, %s, %s) ON CONFLICT (doc_id) "
                         "DO UPDATE SET file = EXCLUDED.file, content = EXCLUDED.content", (doc_id, name, raw))
        conn.commit()


def original(settings: Settings, doc_id: str) -> bytes | None:
    with connection(settings) as conn:
        row = conn.execute("SELECT content FROM rag_originals WHERE doc_id = %s", (doc_id,)).fetchone()
        conn.rollback()
    return bytes(row[0]) if row else None


def drop_original(settings: Settings, doc_id: str) -> None:
    with connection(settings) as conn:
        conn.execute("DELETE FROM rag_originals WHERE doc_id = %s", (doc_id,))
        conn.commit()


class PgLog:
    """An append-only log of JSON records, as rag/web/feedback.py JsonLog has it (append, read), in one table."""

    def __init__(self, settings: Settings, kind: str):
        self.settings = settings
        self.kind = kind

    def append(self, record: dict) -> None:
        stamped = record | {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        with connection(self.settings) as conn:
            conn.execute("INSERT INTO rag_log (kind, record) VALUES (%s, %s::jsonb)",
                         (self.kind, json.dumps(stamped, ensure_ascii=False)))
            conn.commit()

    def read(self) -> list[dict]:
        with connection(self.settings) as conn:
            rows = conn.execute("SELECT record FROM rag_log WHERE kind = %s ORDER BY id", (self.kind,)).fetchall()
            conn.rollback()
        return [r[0] for r in rows if isinstance(r[0], dict)]


class PgRateLimiter:
    """Requests per client per minute, counted in the database for every process (a fixed one-minute window: the
    count and the check are one statement, so two processes never both let the 31st request through)."""

    def __init__(self, settings: Settings, per_minute: int, fallback=None):
        self.settings = settings
        self.per_minute = per_minute
        self.fallback = fallback  # counts in this process while the database cannot be reached

    def allow(self, client: str) -> bool:
        if self.per_minute <= 0:
            return True
        from rag.errors import RagError

        try:
            return self._allow(client)
        except RagError:
            return self.fallback.allow(client) if self.fallback is not None else True

    def _allow(self, client: str) -> bool:
        minute = int(time.time() // 60)
        with connection(self.settings) as conn:
            hits = conn.execute(
                "INSERT INTO rag_rate (client, minute, hits) VALUES (%s, %s, 1) ON CONFLICT (client, minute) "
                "DO UPDATE SET hits = rag_rate.hits + 1 RETURNING hits", (client, minute)).fetchone()[0]
            if hits == 1:  # the first request of a minute clears what older minutes left
                conn.execute("DELETE FROM rag_rate WHERE minute < %s", (minute - 1,))
            conn.commit()
        return hits <= self.per_minute
