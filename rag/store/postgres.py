"""PostgreSQL + pgvector as the shared store (`RAG_STORE=postgresql://…`), behind the embedded store's interface.

Tables (created on first use):
  rag_meta       one row: the index record (embedder, dimension, chunker, tokenizer, fingerprints, files, generation)
  rag_documents  doc_id, reading position, metadata (jsonb), full text
  rag_passages   id (global reading order), doc_id, the passage record (jsonb), token count, vector (HNSW index)
  rag_postings   (term, passage, document number, tf, length, impact): the same jieba tokens the embedded store indexes
  rag_forward    passage → its terms (64-bit hashes, sorted) and tfs: the forward index exact scores are read from
  rag_terms      term → document frequency
  rag_stats      passage count and total length; the next passage id and document number (never given twice, so a
                 process that has not reloaded yet can not mistake a newer document's passages for those it knows)

BM25 is scored in SQL with the embedded store's formula and exact statistics, which every add and remove keeps up to
date in the same transaction as the passages (an add that fails half-way leaves nothing). Finding the best passages
reads a bounded amount per question term: each term's postings are indexed by impact (the term's BM25 factor of the
passage, tf and length, at the statistics of the day it was written), and a question reads at most `bm25_depth` of
them per term, best first (impact-ordered early termination: the passages a term contributes most to); the best few
times as many candidates as wanted by that partial score are then scored exactly (`bm25_of`, one row of the forward
index per candidate). A filter is pushed into that read: the document number is in every posting's index entry, so a
wide filter is applied to the entries read, reading as many more as the filter leaves out (up to `READ_MAX` times
`bm25_depth`); a narrow one (a region, a few documents: at most `SCOPE_SCAN` passages) has every passage of its
documents scored exactly instead, and compared with the question's vector exactly. Documents in force are a column
(each document's end year, indexed), not a list of names. Arrays of numbers are cast to the columns' type (`bigint[]`): a
comparison of bigint with the smallint[] or int[] that a list of small numbers is sent as is not hashed, and searches
the array once per row.

Writers serialise on an advisory lock; readers see a generation number that every change bumps, so every `rag serve`
sharing the database reloads the document list when another one changed it.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np
from cachetools import LRUCache

from rag.errors import IndexMismatchError, IndexMissingError, StoreUnavailableError
from rag.ingest.chunking import Chunk, chunk_corpus
from rag.ingest.docfacts import period_end
from rag.models.embedders import Embedder
from rag.settings import Settings
from rag.store.base import InForce
from rag.store.segments import chunker_config, make_segment
from rag.store.sparse import K1, B

WRITER_LOCK = 7_240_511  # pg_advisory_lock key for writers
CONNECT_TIMEOUT_S = 5
# A filter leaving at most this many passages has each of them scored exactly (reading their forward rows and vectors);
# a wider one takes the impact-ordered read, with the filter applied to the entries
# read, reading 1 / (the share of passages it leaves) times as many, at most READ_MAX times the depth.
SCOPE_SCAN = 3_000
READ_MAX = 10
# A filtered vector search walks the graph through at most this many passages (pgvector's own bound is 20,000:
# ~130 ms at 10^6 passages here, for a filter whose passages are rare near the question)
FILTER_SCAN = 4_000


def where(url: str) -> str:
    """host:port/db of a URL (no user or password), for messages."""
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path}"


def unavailable(url: str, exc: Exception | None = None) -> StoreUnavailableError:
    return StoreUnavailableError(f"PostgreSQL at {where(url)} unreachable: {exc}",
                                 f"无法连接检索数据库（{where(url)}），请确认 PostgreSQL 已启动、地址和口令正确；连接恢复后会自动继续。")


# The impact-ordered reads (index-only; a filter on `doc` is applied to the entries), and the documents' postings for
# removals. Each is partial on a condition true of every posting (`impact > 0`, `tf > 0`) that only the statements
# meant for it state: reading a segment's range of passages per term must take the (term, passage) key, which the
# planner, not knowing in a join how many postings a term has, otherwise passes over (for an impact range read and
# filtered, or a skip scan of the document index).
_POSTING_INDEXES = """
CREATE INDEX IF NOT EXISTS rag_postings_impact ON rag_postings (term, impact DESC) INCLUDE (passage, tf, length, doc)
    WHERE impact > 0;
CREATE INDEX IF NOT EXISTS rag_postings_doc ON rag_postings (doc) WHERE tf > 0;
"""

_HNSW = """
CREATE INDEX IF NOT EXISTS rag_passages_hnsw ON rag_passages USING hnsw (embedding vector_ip_ops)
    WITH (m = 16, ef_construction = 64);
"""
BUILD_MEMORY = "2GB"  # maintenance_work_mem of a bulk load's index builds (the graph of 10^6 vectors fits)

# A database written before the impact-ordered postings (no `doc`, no `impact`) is brought up to date in place once.
_UPGRADE_STATS = """
ALTER TABLE rag_stats ADD COLUMN IF NOT EXISTS next_passage bigint NOT NULL DEFAULT 0,
                      ADD COLUMN IF NOT EXISTS next_doc bigint NOT NULL DEFAULT 0;
"""
_UPGRADE_POSTINGS = f"""
ALTER TABLE rag_postings ADD COLUMN IF NOT EXISTS doc bigint, ADD COLUMN IF NOT EXISTS impact real;
UPDATE rag_postings p SET doc = d.position,
       impact = p.tf / (p.tf + {K1}::float8 * (1 - {B}::float8 + {B}::float8 * p.length / greatest(st.total_len::float8 / greatest(st.n, 1), 1)))
FROM rag_passages s JOIN rag_documents d USING (doc_id), rag_stats st WHERE s.id = p.passage AND st.id = 1;
ALTER TABLE rag_postings ALTER COLUMN doc SET NOT NULL, ALTER COLUMN impact SET NOT NULL,
      DROP CONSTRAINT IF EXISTS rag_postings_passage_fkey, DROP CONSTRAINT rag_postings_pkey,
      ADD PRIMARY KEY (term, passage) INCLUDE (tf, length);
DROP INDEX IF EXISTS rag_postings_passage;
{_POSTING_INDEXES}
"""


# The documents in force as an indexed column: each document's end year (`period_end` of its period; NULL: none
# stated, in force). The index gives a year's documents in force without reading the documents' rows.
NO_END = 32767
_UNTIL_INDEX = f"""
CREATE INDEX IF NOT EXISTS rag_documents_until ON rag_documents ((coalesce(until_year, {NO_END}))) INCLUDE (doc_id, position);
"""
_UPGRADE_UNTIL = r"""
ALTER TABLE rag_documents ADD COLUMN until_year int;
UPDATE rag_documents SET until_year = substring(meta->>'period' FROM '^20\d\d-(20\d\d)$')::int
WHERE meta->>'period' ~ '^20\d\d-20\d\d$';
""" + _UNTIL_INDEX


# The forward index: each passage's terms (as 64-bit hashes, sorted) and their tfs, so that the exact BM25 of a
# candidate is one row read, not one probe of the postings' key per question term (at 10^6 passages each probe
# costs ~10 µs: 20 ms for the ~400 candidates of a question, against ~7 ms read this way).
_FORWARD = """
CREATE TABLE IF NOT EXISTS rag_forward (passage bigint PRIMARY KEY, length int NOT NULL, hashes bigint[] NOT NULL,
                                        tfs int[] NOT NULL);
"""
# the forward rows of the postings `where` selects (a segment's: a range of passages of its terms; all of them)
_FORWARD_OF = """
INSERT INTO rag_forward SELECT passage, max(length), array_agg(h ORDER BY h), array_agg(tf ORDER BY h)
FROM (SELECT passage, length, tf, hashtextextended(term, 0) AS h FROM rag_postings {where}) p GROUP BY passage
"""
_UPGRADE_FORWARD = _FORWARD + _FORWARD_OF.format(where="")


def _schema(dim: int) -> str:
    return f"""
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE IF NOT EXISTS rag_meta (id int PRIMARY KEY CHECK (id = 1), config jsonb NOT NULL, generation bigint NOT NULL);
CREATE TABLE IF NOT EXISTS rag_documents (doc_id text PRIMARY KEY, position bigint NOT NULL, meta jsonb NOT NULL,
                                          text text NOT NULL, until_year int);
{_UNTIL_INDEX}
CREATE TABLE IF NOT EXISTS rag_passages (id bigint PRIMARY KEY,
                                         doc_id text NOT NULL REFERENCES rag_documents ON DELETE CASCADE,
                                         record jsonb NOT NULL, length int NOT NULL, embedding vector({dim}) NOT NULL);
CREATE INDEX IF NOT EXISTS rag_passages_doc ON rag_passages (doc_id, id);
{_HNSW}
CREATE TABLE IF NOT EXISTS rag_postings (term text NOT NULL, passage bigint NOT NULL, doc bigint NOT NULL,
                                         tf int NOT NULL, length int NOT NULL, impact real NOT NULL,
                                         PRIMARY KEY (term, passage) INCLUDE (tf, length))
    WITH (fillfactor = 100);
{_POSTING_INDEXES}
{_FORWARD}
CREATE TABLE IF NOT EXISTS rag_terms (term text PRIMARY KEY, df int NOT NULL);
CREATE TABLE IF NOT EXISTS rag_stats (id int PRIMARY KEY CHECK (id = 1), n bigint NOT NULL, total_len bigint NOT NULL,
                                      next_passage bigint NOT NULL DEFAULT 0, next_doc bigint NOT NULL DEFAULT 0);
INSERT INTO rag_stats VALUES (1, 0, 0) ON CONFLICT DO NOTHING;
"""


def _has_column(conn, table: str, column: str) -> bool:
    return bool(conn.execute("SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = "
                             "current_schema() AND table_name = %s AND column_name = %s)", (table, column)).fetchone()[0])


def _outdated(conn) -> bool:
    """A database of an earlier layout (postings without impacts, statistics without the id counters, passages
    without their document's end year)."""
    return bool(conn.execute("SELECT to_regclass('rag_postings') IS NOT NULL").fetchone()[0]) and not (
        _has_column(conn, "rag_postings", "impact") and _has_column(conn, "rag_stats", "next_doc")
        and _has_column(conn, "rag_documents", "until_year")
        and bool(conn.execute("SELECT to_regclass('rag_forward') IS NOT NULL").fetchone()[0]))


def _upgrade(conn) -> None:
    if not _has_column(conn, "rag_postings", "impact"):
        conn.execute(_UPGRADE_POSTINGS)
    conn.execute(_UPGRADE_STATS)
    if not _has_column(conn, "rag_documents", "until_year"):
        conn.execute(_UPGRADE_UNTIL)
    if not conn.execute("SELECT to_regclass('rag_forward') IS NOT NULL").fetchone()[0]:
        conn.execute(f"SET LOCAL work_mem = '{BUILD_MEMORY}'")
        conn.execute(_UPGRADE_FORWARD)


class PgBackend:
    """The index operations of rag/store/embedded.py (read_config, apply_changes, load, writer_lock, generation) on PostgreSQL."""

    def __init__(self, url: str, ef_search: int = 128, bm25_depth: int = 500):
        self.url = url
        self.ef_search = ef_search
        self.bm25_depth = bm25_depth
        self._pool = None

    # ------------------------------------------------------------ connections

    @property
    def pool(self):
        if self._pool is None:
            import logging

            from psycopg_pool import ConnectionPool

            # the pool logs every failed reconnection; our own message (unavailable()) says it once, in Chinese
            logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
            # statements are never prepared: a prepared statement may get a generic plan, in which an array of document
            # numbers is a parameter searched once per posting rather than a constant hashed once
            self._pool = ConnectionPool(self.url, min_size=1, max_size=8, open=False,
                                        check=ConnectionPool.check_connection,
                                        kwargs={"connect_timeout": CONNECT_TIMEOUT_S, "autocommit": False,
                                                "prepare_threshold": None})
            self._pool.open(wait=False)
        return self._pool

    @contextlib.contextmanager
    def connection(self) -> Iterator:
        import psycopg
        import psycopg_pool

        try:
            with self.pool.connection(timeout=CONNECT_TIMEOUT_S) as conn:
                yield conn
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as exc:
            # start afresh next time: a pool backing off from failed reconnections would keep answering 503 for a
            # while after the database is back
            self._reset()
            raise unavailable(self.url, exc) from exc

    def _reset(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            with contextlib.suppress(Exception):
                pool.close(timeout=0)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    # ------------------------------------------------------------ the index record

    def read_config(self) -> dict | None:
        with self.connection() as conn:
            exists = conn.execute("SELECT to_regclass('rag_meta') IS NOT NULL").fetchone()[0]
            row = conn.execute("SELECT config, generation FROM rag_meta WHERE id = 1").fetchone() if exists else None
            conn.rollback()
        if row is None:
            return None
        return row[0] | {"generation": row[1], "_file": f"pg-{row[1]}"}

    def generation(self) -> str:
        try:
            with self.connection() as conn:
                row = conn.execute("SELECT generation FROM rag_meta WHERE id = 1").fetchone()
                conn.rollback()
        except Exception:  # an unreachable database or no index yet: nothing newer to load
            return ""
        return f"pg-{row[0]}" if row else ""

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """One writer at a time across every process and machine sharing the database."""
        with self.connection() as conn:
            conn.autocommit = True
            conn.execute("SELECT pg_advisory_lock(%s)", (WRITER_LOCK,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (WRITER_LOCK,))
                conn.autocommit = False

    # ------------------------------------------------------------ changing the index

    def apply_changes(self, config: dict, segment, remove: set[str], fingerprints: dict[str, str],
                      skipped: list | None = None) -> dict:
        """One transaction: `remove` and the documents `segment` replaces deleted (statistics decremented), the
        segment's documents, passages, vectors and postings inserted (statistics incremented), the record updated."""
        config = json.loads(json.dumps({k: v for k, v in config.items() if k not in ("_file", "segments")}))
        replaced = set(remove) | ({d["doc_id"] for d in segment.documents} if segment else set())
        config["fingerprints"] = {k: v for k, v in config.get("fingerprints", {}).items() if k not in replaced} | fingerprints
        if skipped is not None:
            config["skipped_files"] = skipped
        with self.connection() as conn:
            try:
                if not conn.execute("SELECT to_regclass('rag_meta') IS NOT NULL").fetchone()[0]:
                    conn.execute(_schema(int(config["dim"])))
                elif _outdated(conn):
                    _upgrade(conn)
                current = conn.execute("SELECT config FROM rag_meta WHERE id = 1").fetchone()
                if current and (current[0].get("embedder"), current[0].get("dim")) != (config["embedder"], config["dim"]):
                    if not config.get("_replace_all"):
                        raise _mismatch(current[0], config["embedder"], config["dim"], self.url)
                if config.pop("_replace_all", False):
                    conn.execute("TRUNCATE rag_postings, rag_passages, rag_documents, rag_terms")
                    conn.execute("UPDATE rag_stats SET n = 0, total_len = 0")
                    if current and current[0].get("dim") != config["dim"]:
                        conn.execute("DROP INDEX IF EXISTS rag_passages_hnsw")
                        conn.execute(f"ALTER TABLE rag_passages ALTER COLUMN embedding TYPE vector({int(config['dim'])})")
                        conn.execute(_HNSW)
                if replaced:
                    _delete_documents(conn, sorted(replaced))
                if segment is not None and segment.chunks:
                    _insert(conn, segment)
                counts = conn.execute("SELECT (SELECT count(*) FROM rag_passages), (SELECT count(*) FROM rag_documents)").fetchone()
                config["chunks"], config["documents"] = int(counts[0]), int(counts[1])
                config["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
                row = conn.execute(
                    "INSERT INTO rag_meta VALUES (1, %s, 1) ON CONFLICT (id) DO UPDATE "
                    "SET config = EXCLUDED.config, generation = rag_meta.generation + 1 RETURNING generation",
                    (_json(config),)).fetchone()
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
        return config | {"generation": row[0], "_file": f"pg-{row[0]}"}

    def load(self, embedder: Embedder) -> "PgIndex":
        config = self.read_config()
        if config is None:
            raise IndexMissingError(f"{where(self.url)}: no index in this database",
                                    f"数据库 {where(self.url)} 中还没有索引，请先运行 `rag index`。")
        if config.get("embedder") != embedder.name or config.get("dim") != embedder.dim:
            raise _mismatch(config, embedder.name, embedder.dim, self.url)
        with self.connection() as conn:
            outdated = _outdated(conn)
            conn.rollback()
        if outdated:  # once, by whichever process loads it first
            with self.writer_lock():
                with self.connection() as conn:
                    if _outdated(conn):
                        _upgrade(conn)
                    conn.commit()
                self.vacuum()
        with self.connection() as conn:
            rows = conn.execute("SELECT meta, position FROM rag_documents ORDER BY position").fetchall()
            counts = dict(conn.execute("SELECT doc_id, count(*) FROM rag_passages GROUP BY doc_id").fetchall())
            conn.rollback()
        documents = [row[0] for row in rows]
        numbers = {row[0]["doc_id"]: int(row[1]) for row in rows}
        return PgIndex(self, config, documents, {k: int(v) for k, v in counts.items()}, numbers)

    def bulk_load(self, config: dict, documents: Iterable, settings: Settings, embedder: Embedder, limit: int = 0,
                  batch: int = 5_000) -> dict:
        """Many documents in transactions of about `batch` passages (the benchmark's build), replacing the index.
        The postings' secondary indexes and the vector graph are built once at the end (sorting once is much faster
        than keeping them up to date row by row). Returns the record."""
        config = self.apply_changes(config, None, set(), {})  # empty, with the schema
        with self.connection() as conn:
            conn.execute("DROP INDEX IF EXISTS rag_postings_impact, rag_postings_doc, rag_passages_hnsw")
            conn.commit()
        try:
            config = self._load_batches(config, documents, settings, embedder, limit, batch)
        finally:
            with self.connection() as conn:
                conn.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
                conn.execute(_POSTING_INDEXES + _HNSW)
                conn.commit()
        self.vacuum()
        return config

    def _load_batches(self, config: dict, documents: Iterable, settings: Settings, embedder: Embedder, limit: int,
                      batch: int) -> dict:

        docs, chunks, total = [], [], 0
        for doc in documents:
            found = chunk_corpus([doc], chunker_config(settings))
            docs.append(doc)
            chunks.extend(found)
            total += len(found)
            done = bool(limit and total >= limit)
            if len(chunks) >= batch or done:
                config = self.apply_changes(config, make_segment(docs, settings, embedder, chunks=chunks), set(),
                                            {d.doc_id: d.fingerprint for d in docs})
                docs, chunks = [], []
            if done:
                break
        if chunks:
            config = self.apply_changes(config, make_segment(docs, settings, embedder, chunks=chunks), set(),
                                        {d.doc_id: d.fingerprint for d in docs})
        return config

    def vacuum(self) -> None:
        """Mark the pages written as visible to all, so the impact-ordered reads stay in the index (autovacuum does it
        too, later); statistics for the planner."""
        with self.connection() as conn:
            conn.autocommit = True
            try:
                conn.execute("VACUUM (ANALYZE) rag_postings, rag_passages, rag_documents, rag_forward")
            finally:
                conn.autocommit = False

    def disk_mb(self) -> float:
        with self.connection() as conn:
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            conn.rollback()
        return size / 2**20


def _mismatch(config: dict, name: str, dim: int, url: str) -> IndexMismatchError:
    return IndexMismatchError(
        f"{where(url)} holds vectors of {config.get('embedder')} ({config.get('dim')} dims), not {name} ({dim} dims)",
        f"数据库 {where(url)} 中的向量是用 {config.get('embedder')}（{config.get('dim')} 维）生成的，与当前向量模型 "
        f"{name}（{dim} 维）不一致，拒绝使用。请运行 `rag index --rebuild` 重建。")


def vector_text(vector) -> str:
    """pgvector's text form; float32 values printed exactly (no adapter to register on every connection)."""
    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).astype(float).tolist())) + "]"


def _json(value):
    from psycopg.types.json import Jsonb

    return Jsonb(value)


def _delete_documents(conn, doc_ids: list[str]) -> None:
    numbers = [r[0] for r in conn.execute("SELECT position FROM rag_documents WHERE doc_id = ANY(%(d)s)", {"d": doc_ids})]
    if not numbers:  # new documents only (during a bulk load there is no document index to find "none" by)
        return
    conn.execute("""
        UPDATE rag_terms t SET df = t.df - c.n
        FROM (SELECT term, count(*) AS n FROM rag_postings WHERE doc = ANY(%(n)s::bigint[]) AND tf > 0 GROUP BY term) c
        WHERE t.term = c.term""", {"n": numbers})
    conn.execute("""
        UPDATE rag_stats s SET n = s.n - c.cnt, total_len = s.total_len - c.len
        FROM (SELECT count(*) AS cnt, coalesce(sum(length), 0) AS len FROM rag_passages WHERE doc_id = ANY(%(d)s)) c
        WHERE s.id = 1""", {"d": doc_ids})
    conn.execute("DELETE FROM rag_postings WHERE doc = ANY(%(n)s::bigint[]) AND tf > 0", {"n": numbers})
    conn.execute("DELETE FROM rag_forward WHERE passage IN (SELECT id FROM rag_passages WHERE doc_id = ANY(%(d)s))",
                 {"d": doc_ids})
    conn.execute("DELETE FROM rag_documents WHERE doc_id = ANY(%(d)s)", {"d": doc_ids})
    conn.execute("DELETE FROM rag_terms WHERE df <= 0")


def _insert(conn, segment) -> None:
    # ids and numbers past every one given before (the maxima: a database of the layout without the counters)
    first, position = (int(v) for v in conn.execute("""
        UPDATE rag_stats SET
            next_passage = greatest(next_passage, (SELECT coalesce(max(id), -1) + 1 FROM rag_passages)) + %(p)s,
            next_doc = greatest(next_doc, (SELECT coalesce(max(position), -1) + 1 FROM rag_documents)) + %(d)s
        WHERE id = 1 RETURNING next_passage - %(p)s, next_doc - %(d)s""",
        {"p": len(segment.chunks), "d": len(segment.documents)}).fetchone())
    with conn.cursor().copy("COPY rag_documents (doc_id, position, meta, text, until_year) FROM STDIN") as copy:
        for i, doc in enumerate(segment.documents):
            copy.write_row((doc["doc_id"], position + i, json.dumps(doc, ensure_ascii=False),
                            segment.texts.get(doc["doc_id"], ""), period_end(doc.get("period", ""))))
    lengths = np.asarray(segment.postings.lengths)
    numbers = {doc["doc_id"]: position + i for i, doc in enumerate(segment.documents)}
    with conn.cursor().copy("COPY rag_passages (id, doc_id, record, length, embedding) FROM STDIN") as copy:
        for row, chunk in enumerate(segment.chunks):
            copy.write_row((first + row, chunk.doc_id, json.dumps(chunk.to_record(), ensure_ascii=False),
                            int(lengths[row]), vector_text(segment.vectors[row])))
    postings = segment.postings
    n, total = conn.execute("SELECT n, total_len FROM rag_stats WHERE id = 1").fetchone()
    # the statistics once this segment is in: a posting's impact orders the term's postings (its exact score is
    # computed at question time from tf and length)
    slope = K1 * B / max((int(total) + int(lengths.sum())) / max(int(n) + len(segment.chunks), 1), 1.0)
    doc_of = np.array([numbers[c.doc_id] for c in segment.chunks], np.int64)
    with conn.cursor().copy("COPY rag_postings (term, passage, doc, tf, length, impact) FROM STDIN") as copy:
        for t, term in enumerate(postings.terms):
            lo, hi = int(postings.indptr[t]), int(postings.indptr[t + 1])
            rows = np.asarray(postings.rows[lo:hi])
            tf = np.asarray(postings.tf[lo:hi], np.float64)
            impact = tf / (tf + K1 * (1 - B) + slope * lengths[rows])
            for passage, doc, f, length, value in zip(rows.tolist(), doc_of[rows].tolist(), tf.astype(int).tolist(),
                                                      lengths[rows].tolist(), impact.tolist(), strict=True):
                copy.write_row((term, first + passage, doc, f, int(length), value))
    # the segment's forward rows, from its postings just written (each term's range of the segment's passages)
    conn.execute(_FORWARD_OF.format(where="WHERE term = ANY(%(terms)s) AND passage BETWEEN %(first)s AND %(last)s"),
                 {"terms": list(postings.terms), "first": first, "last": first + len(segment.chunks) - 1})
    df = np.diff(np.asarray(postings.indptr))
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO rag_terms VALUES (%s, %s) ON CONFLICT (term) DO UPDATE SET df = rag_terms.df + EXCLUDED.df",
                        [(term, int(d)) for term, d in zip(postings.terms, df, strict=True)])
    conn.execute("UPDATE rag_stats SET n = n + %s, total_len = total_len + %s WHERE id = 1",
                 (len(segment.chunks), int(lengths.sum())))


_IN_FORCE = f"coalesce(until_year, {NO_END}) >= %(year)s"  # rag_documents_until's expression


def array_literal(values: Iterable) -> str:
    """A PostgreSQL array literal ('{"a","b"}'): a filter's thousands of names or numbers written once, then sent as
    one string with every statement that uses it (a list is converted element by element each time)."""
    return "{" + ",".join('"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "}"


@dataclass(frozen=True)
class Scope:
    """A document filter as the statements use it. `passages`: how many passages it keeps. `documents`: the doc_ids
    kept (narrow) or left out (`outside`: when they are most of the library), for the passages' `doc_id`; `numbers`:
    the same as document numbers for the postings' `doc` (with `highest`, so that a filter naming the documents it
    leaves out also leaves out those added since this process loaded its list). Both as array literals."""

    passages: int
    documents: str
    numbers: str
    outside: bool
    highest: int
    year: int | None = None  # the documents in force in that year, by their end-year column

    @classmethod
    def of(cls, index: "PgIndex", doc_ids: frozenset[str]) -> "Scope":
        passages = sum(index._counts.get(d, 0) for d in doc_ids)
        outside = 2 * len(doc_ids) > len(index.documents)
        named = {d["doc_id"] for d in index.documents} - doc_ids if outside else doc_ids
        return cls(passages, array_literal(sorted(named)),
                   array_literal(sorted(index.numbers[d] for d in named if d in index.numbers)), outside,
                   max(index.numbers.values(), default=-1) if outside else 0,
                   doc_ids.year if isinstance(doc_ids, InForce) else None)

    @property
    def condition(self) -> str:
        """On the passages (parameters `docs`, `year`)."""
        if self.year is not None:
            return f"doc_id IN (SELECT doc_id FROM rag_documents WHERE {_IN_FORCE})"
        return "doc_id <> ALL(%(docs)s::text[])" if self.outside else "doc_id = ANY(%(docs)s::text[])"

    def params(self) -> dict:
        return {"docs": self.documents, "numbers": self.numbers, "highest": self.highest, "year": self.year}

    @property
    def posting_condition(self) -> str:
        """On the postings' document numbers (parameters `numbers`, `highest`): a constant array, hashed once (a
        subquery on the documents, even the in-force column's, is joined again for each question term)."""
        if self.outside:
            return "WHERE c.doc <> ALL(%(numbers)s::bigint[]) AND c.doc <= %(highest)s"
        return "WHERE c.doc = ANY(%(numbers)s::bigint[])"


class PgIndex:
    """One loaded generation of the PostgreSQL store: the document list in memory, everything else queried."""

    def __init__(self, backend: PgBackend, config: dict, documents: list[dict], counts: dict[str, int],
                 numbers: dict[str, int]):
        self.backend = backend
        self.config = config
        self.documents = documents
        self._counts = counts
        self.numbers = numbers  # doc_id → the document's number in the postings
        self._scopes: LRUCache[frozenset[str], Scope] = LRUCache(maxsize=256)
        self._scopes_lock = threading.Lock()
        self.exact_dense = False
        # True: BM25 candidates from every posting and vectors scanned without the graph (what the benchmark compares
        # the bounded reads against)
        self.exact = False

    def __len__(self) -> int:
        return int(self.config.get("chunks", 0))

    def passage_counts(self) -> dict[str, int]:
        return {d["doc_id"]: self._counts.get(d["doc_id"], 0) for d in self.documents}

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        with self.backend.connection() as conn:
            rows = conn.execute("SELECT record FROM rag_passages WHERE doc_id = %s ORDER BY id", (doc_id,)).fetchall()
            conn.rollback()
        return [Chunk.from_record(r[0]) for r in rows]

    @property
    def chunks(self) -> list[Chunk]:
        with self.backend.connection() as conn:
            rows = conn.execute("SELECT record FROM rag_passages ORDER BY id").fetchall()
            conn.rollback()
        return [Chunk.from_record(r[0]) for r in rows]

    def text_of(self, doc_id: str) -> str:
        with self.backend.connection() as conn:
            row = conn.execute("SELECT text FROM rag_documents WHERE doc_id = %s", (doc_id,)).fetchone()
            conn.rollback()
        return row[0] if row else ""

    def query(self, tokens: list[str], vector: np.ndarray | None) -> "PgQuery":
        return PgQuery(self, tokens, vector)

    def scope(self, doc_ids: AbstractSet[str]) -> "Scope":
        """What a document filter is in SQL, worked out once per filter (the same set object comes back for each
        question: a filter such as documents in force holds most of a library of tens of thousands)."""
        key = doc_ids if isinstance(doc_ids, frozenset) else frozenset(doc_ids)
        with self._scopes_lock:
            found = self._scopes.get(key)
        if found is None:
            found = Scope.of(self, key)
            with self._scopes_lock:
                self._scopes[key] = found
        return found

    def exact_dense_top(self, vector: np.ndarray, limit: int) -> np.ndarray:
        with self.backend.connection() as conn:
            conn.execute("SET LOCAL enable_indexscan = off")
            rows = conn.execute("SELECT id FROM rag_passages ORDER BY embedding <#> %s::vector, id LIMIT %s",
                                (vector_text(vector), limit)).fetchall()
            conn.rollback()
        return np.array([r[0] for r in rows], np.int64)


# The question's terms with their BM25 weights (exact statistics); the passage length is stored in each posting, so
# scoring reads postings only.
_WEIGHTS = f"""
WITH q AS (SELECT * FROM unnest(%(terms)s::text[], %(qtf)s::int[]) AS q(term, qtf)),
     s AS (SELECT n::float8 AS n, total_len::float8 / greatest(n, 1) AS avg FROM rag_stats WHERE id = 1),
     w AS (SELECT q.term, hashtextextended(q.term, 0) AS hash, q.qtf * ln(1.0::float8 + (s.n - t.df + 0.5::float8) / (t.df + 0.5::float8)) * {K1 + 1}::float8
                  AS weight, {K1}::float8 * (1.0::float8 - {B}::float8) AS base, {K1 * B}::float8 / s.avg AS slope
           FROM q JOIN rag_terms t USING (term), s WHERE t.term = ANY(%(terms)s))"""
_SCORE = "sum(w.weight * c.tf / (c.tf + w.base + w.slope * c.length))"

# exact scores of the passages %(ids)s, from their forward rows: each question term's tf found by its hash
_SCORES = _WEIGHTS + """
SELECT f.passage, sum(w.weight * c.tf / (c.tf + w.base + w.slope * f.length))
FROM rag_forward f CROSS JOIN w CROSS JOIN LATERAL (SELECT f.tfs[array_position(f.hashes, w.hash)] AS tf) c
WHERE f.passage = ANY(%(ids)s::bigint[]) AND c.tf IS NOT NULL GROUP BY f.passage"""

# The best %(limit)s passages by the postings `c` that {postings} reads (a partial score when they are each term's
# best by impact: bm25_top then scores its best few times %(limit)s exactly, from their forward rows)
_TOP = _WEIGHTS + f"""
SELECT c.passage, {_SCORE} AS score FROM {{postings}} GROUP BY c.passage ORDER BY score DESC, c.passage LIMIT %(limit)s"""

# every posting of the terms (reading every posting: the exact ranking)
_EVERY = "w JOIN rag_postings c ON c.term = w.term {scope}"
# each term's best %(read)s postings by impact; a filter on their document numbers applied to the entries read
_BEST = ("w CROSS JOIN LATERAL (SELECT p.passage, p.tf, p.length, p.doc FROM rag_postings p "
         "WHERE p.term = w.term AND p.impact > 0 ORDER BY p.impact DESC LIMIT %(read)s) c {scope}")
# candidates scored exactly, from their partial scores of the impact-ordered reads, per passage wanted
RESCORED = 3


class PgQuery:
    """One question against PostgreSQL: the same five calls as the embedded store's query. Its calls may run at once
    on several threads (each statement takes its own connection)."""

    concurrent = True

    def __init__(self, index: PgIndex, tokens: list[str], vector: np.ndarray | None):
        self.index, self.vector = index, vector
        counts = Counter(tokens)
        self.params = {"terms": list(counts), "qtf": list(counts.values())}
        self._rows: dict[int, tuple] = {}  # passage → (doc_id, similarity), as read
        self._bm25: dict[int, float] = {}  # passage → exact BM25, as scored (candidates are scored once a question)
        self._vector_text = vector_text(vector) if vector is not None else ""
        self._scoped: dict[Scope, np.ndarray] = {}  # every passage of a narrow filter, as read
        self._scoped_lock = threading.Lock()

    def _run(self, sql: str, params: dict, settings: tuple[str, ...] = ()) -> list[tuple]:
        with self.index.backend.connection() as conn:
            if settings:  # one round trip for all of them (no parameters: sent as one simple query)
                conn.execute("; ".join(settings))
            rows = conn.execute(sql, params).fetchall()
            conn.rollback()
        return rows

    def bm25_top(self, limit: int, doc_ids: AbstractSet[str] | None = None) -> np.ndarray:
        if not self.params["terms"]:
            return np.zeros(0, np.int64)
        index = self.index
        depth = index.backend.bm25_depth
        scope = index.scope(doc_ids) if doc_ids is not None else None
        if scope is not None and scope.passages <= SCOPE_SCAN:  # every passage of a narrow filter, scored exactly
            return self._best_of(self._passages_of(scope), limit)
        params = self.params | {"limit": limit}
        if index.exact or depth <= 0:
            within = ""
            if scope is not None:
                params |= scope.params()
                within = f"AND c.passage IN (SELECT id FROM rag_passages WHERE {scope.condition})"
            postings = _EVERY.format(scope=within)
            return np.array([r[0] for r in self._run(_TOP.format(postings=postings), params)], np.int64)
        condition = ""
        if scope is not None:
            condition, params = scope.posting_condition, params | scope.params()
        kept = scope.passages if scope is not None else len(index)
        params["read"] = max(depth, int(min(depth * len(index) / max(kept, 1), READ_MAX * depth)))
        params["limit"] = RESCORED * limit
        rows = self._run(_TOP.format(postings=_BEST.format(scope=condition)), params)
        return self._best_of(np.array([r[0] for r in rows], np.int64), limit)

    def _passages_of(self, scope: Scope) -> np.ndarray:
        """Every passage of a narrow filter, with its document and similarity (read once a question: its BM25 and
        its vector search both take them, perhaps at once)."""
        with self._scoped_lock:
            if scope not in self._scoped:
                sql = ("SELECT id, doc_id, " + ("-(embedding <#> %(v)s::vector)" if self.vector is not None else "0.0")
                       + f" FROM rag_passages WHERE {scope.condition}")
                rows = self._run(sql, scope.params() | {"v": self._vector_text})
                self._rows.update((int(r[0]), (r[1], float(r[2]))) for r in rows)
                self._scoped[scope] = np.array([r[0] for r in rows], np.int64)
            return self._scoped[scope]

    def _best_of(self, ids: np.ndarray, limit: int) -> np.ndarray:
        """The `limit` passages of `ids` with the highest exact scores (those with none left out), best first."""
        if not len(ids):
            return ids
        scores = self.bm25_of(ids)
        order = np.lexsort((ids, -scores))
        order = order[scores[order] > 0][:limit]
        return ids[order]

    def bm25_of(self, ids: np.ndarray) -> np.ndarray:
        if not self.params["terms"] or not len(ids):
            return np.zeros(len(ids))
        # one forward row per candidate, instead of aggregating every posting again
        missing = [int(i) for i in ids if int(i) not in self._bm25]
        if missing:
            rows = dict(self._run(_SCORES, self.params | {"ids": missing}))
            self._bm25.update((i, float(rows.get(i, 0.0))) for i in missing)
        return np.array([self._bm25[int(i)] for i in ids])

    def dense_top(self, limit: int, doc_ids: AbstractSet[str] | None = None) -> np.ndarray:
        if self.vector is None:
            return np.zeros(0, np.int64)
        scope = self.index.scope(doc_ids) if doc_ids is not None else None
        if scope is not None and scope.passages <= SCOPE_SCAN:
            # a narrow filter: its passages compared exactly (a graph search for the few passages of one document
            # walks the graph until it gives up)
            ids = self._passages_of(scope)
            similarity = np.array([self._rows[int(i)][1] for i in ids])
            return ids[np.lexsort((ids, -similarity))][:limit]
        ef = max(self.index.backend.ef_search, limit)
        settings: tuple[str, ...] = (f"SET LOCAL hnsw.ef_search = {min(ef, 1000)}",)
        # exact: a scan; otherwise the graph, which the planner (not costing the vectors' out-of-line storage) would
        # pass over for a scan once the table has statistics
        settings += ("SET LOCAL enable_indexscan = off",) if self.index.exact else ("SET LOCAL enable_seqscan = off",)
        where, params = "", {"v": self._vector_text, "limit": limit}
        if scope is not None:
            # the graph walked on past the passages the filter leaves out, as far as FILTER_SCAN passages: where
            # the filter's passages are rare among the question's neighbours, it returns those found that far
            where, params = f"WHERE {scope.condition}", params | scope.params()
            settings += ("SET LOCAL hnsw.iterative_scan = relaxed_order",
                         f"SET LOCAL hnsw.max_scan_tuples = {FILTER_SCAN}")
        # the document and similarity of each passage found come along (dense_of and doc_of need not read them again)
        rows = self._run(f"SELECT id, doc_id, -(embedding <#> %(v)s::vector) FROM rag_passages {where} "
                         "ORDER BY embedding <#> %(v)s::vector LIMIT %(limit)s", params, settings)
        self._rows.update((int(r[0]), (r[1], float(r[2]))) for r in rows)
        return np.array([r[0] for r in rows], np.int64)

    def _fetch(self, ids: np.ndarray) -> None:
        """Document and exact similarity of candidates (their records are read only for the passages returned)."""
        missing = [int(i) for i in ids if int(i) not in self._rows]
        if not missing:
            return
        sql = ("SELECT id, doc_id, " + ("-(embedding <#> %(v)s::vector)" if self.vector is not None else "0.0")
               + " FROM rag_passages WHERE id = ANY(%(ids)s::bigint[])")
        for row in self._run(sql, {"ids": missing, "v": self._vector_text}):
            self._rows[int(row[0])] = row[1:]

    def dense_of(self, ids: np.ndarray) -> np.ndarray:
        self._fetch(ids)
        return np.array([float(self._rows[int(i)][1]) for i in ids])

    def doc_of(self, ids: np.ndarray) -> list[str]:
        self._fetch(ids)
        return [self._rows[int(i)][0] for i in ids]

    def chunks(self, ids: np.ndarray) -> list[Chunk]:
        wanted = [int(i) for i in ids]
        records = dict(self._run("SELECT id, record FROM rag_passages WHERE id = ANY(%(ids)s::bigint[])", {"ids": wanted}))
        return [Chunk.from_record(records[i]) for i in wanted]
