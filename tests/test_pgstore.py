"""PostgreSQL + pgvector behind the retriever: the same BM25 ranking and fused top-k as the embedded store, documents
shared between processes, and the faults (unreachable database, vectors of another embedder, a failed add).

A real, throwaway server (rag/store/pglocal.py) is started once for this module on a free port in a temporary directory."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from rag.engine import Engine
from rag.errors import IndexMismatchError, StoreUnavailableError
from rag.language.text import tokenize
from rag.models.embedders import FakeEmbedder
from rag.search.retrieval import Retriever
from rag.store.library import add_documents, ensure_index, remove_document
from rag.store.pglocal import create_database, running_server, vector_unusable

pytestmark = pytest.mark.postgres

QUESTIONS = ["湖南专利转化目标是多少", "杭州知识产权强市的资金怎么安排", "乌海市十四五规划的主要任务", "沈阳运营服务体系建设",
             "高价值专利培育", "知识产权质押融资", "商标品牌战略", "哪些城市提到了知识产权保护中心", "印发日期", "专利密集型产业"]


@contextlib.contextmanager
def rag_serve(settings, **env):
    """A `rag serve` process on the settings' database (fake embedder, extractive), until it answers /healthz."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from rag.store.pglocal import free_port

    port = free_port()
    env = os.environ | {"RAG_STORE": settings.store, "RAG_EMBEDDER": "fake", "RAG_DATA_DIR": str(settings.data_dir),
                        "RAG_LLM_BACKEND": "extractive", "RAG_PORT": str(port)} | env
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                httpx.get(f"{base}/healthz", timeout=5)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.3)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server():
    with running_server() as srv:
        unusable = vector_unusable(srv.url)
        if unusable:  # the wheel's vector.so needs instructions this CPU lacks (seen: "trap invalid opcode in vector.so")
            pytest.skip(unusable)
        yield srv


@pytest.fixture
def pg_settings(real_settings, server, request):
    import hashlib

    name = "t_" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:16]
    return real_settings.replace(store=create_database(server.url, name))


@pytest.fixture(scope="module")
def both(server, tmp_path_factory):
    """The five documents in both stores (built once for the parity tests)."""
    from tests.conftest import DATA, make_settings

    settings = make_settings(DATA, tmp_path_factory.mktemp("parity") / "index")
    embedder = FakeEmbedder()
    embedded, _ = ensure_index(settings, embedder)
    pg, _ = ensure_index(settings.replace(store=create_database(server.url, "t_parity")), embedder)
    return embedder, embedded, pg, settings


def test_postgres_holds_the_same_passages_documents_and_facts(both):
    _, embedded, pg, _ = both
    assert len(pg) == len(embedded) and [d["doc_id"] for d in pg.documents] == [d["doc_id"] for d in embedded.documents]
    assert pg.passage_counts() == embedded.passage_counts()
    doc = embedded.documents[0]["doc_id"]
    assert pg.text_of(doc) == embedded.text_of(doc)
    assert [c.chunk_id for c in pg.chunks_of(doc)] == [c.chunk_id for c in embedded.chunks_of(doc)]


@pytest.mark.parametrize("question", QUESTIONS)
def test_bm25_ranks_alike_in_sql_and_in_the_sparse_matrices(both, question):
    _, embedded, pg, _ = both
    tokens = tokenize(question)
    a = embedded.query(tokens, None)
    b = pg.query(tokens, None)
    ids_a, ids_b = a.bm25_top(50), b.bm25_top(50)
    scores_a, scores_b = a.bm25_of(ids_a), b.bm25_of(ids_b)
    assert np.allclose(scores_a, scores_b, rtol=1e-5)
    # the same ranking: identical wherever scores differ by more than float rounding
    assert [int(i) for i in ids_a] == [int(i) for i in ids_b] or np.allclose(np.sort(scores_a), np.sort(scores_b), rtol=1e-5)
    assert np.allclose(b.bm25_of(ids_a), scores_a, rtol=1e-5)


@pytest.mark.parametrize("question", QUESTIONS)
@pytest.mark.parametrize("filters", [None, {"region": "湖南"}, {"in_force": True}])
def test_fused_top_k_is_the_same_on_both_stores(both, question, filters):
    embedder, embedded, pg, settings = both
    a = Retriever(embedded, embedder, settings).search(question, k=5, filters=filters)
    b = Retriever(pg, embedder, settings).search(question, k=5, filters=filters)
    assert [c.chunk.chunk_id for c in a] == [c.chunk.chunk_id for c in b]
    assert np.allclose([c.score for c in a], [c.score for c in b], atol=1e-5)


def _best_by_impact(pg, terms: list[str], depth: int) -> set[int]:
    """The passages of each term's `depth` highest-impact postings (and those tied with the last), read directly."""
    with pg.backend.connection() as conn:
        rows = conn.execute("SELECT passage FROM (SELECT passage, impact, min(impact) FILTER (WHERE r <= %s) OVER "
                            "(PARTITION BY term) AS cut FROM (SELECT term, passage, impact, row_number() OVER "
                            "(PARTITION BY term ORDER BY impact DESC) AS r FROM rag_postings WHERE term = ANY(%s)) t) u "
                            "WHERE impact >= cut", (depth, terms)).fetchall()
        conn.rollback()
    return {r[0] for r in rows}


@pytest.mark.parametrize("question", QUESTIONS[:5])
def test_bm25_candidates_come_from_a_bounded_read_of_each_terms_best_postings(both, question):
    """Each question term contributes at most `bm25_depth` postings, highest impact first; reading every posting
    (depth 0) ranks exactly as the embedded store."""
    _, embedded, pg, _ = both
    terms = list(dict.fromkeys(tokenize(question)))
    backend = pg.backend
    depth = backend.bm25_depth
    try:
        backend.bm25_depth = 3
        top = pg.query(tokenize(question), None).bm25_top(200)
        assert 0 < len(top) <= 3 * len(terms)
        assert set(top.tolist()) <= _best_by_impact(pg, terms, 3)
        backend.bm25_depth = 0
        every = pg.query(tokenize(question), None).bm25_top(20)
    finally:
        backend.bm25_depth = depth
    exact = embedded.query(tokenize(question), None)
    assert np.allclose(exact.bm25_of(exact.bm25_top(20)), pg.query(tokenize(question), None).bm25_of(every), rtol=1e-5)


def _four_of_five(pg) -> dict:
    return {"doc_ids": [d["doc_id"] for d in pg.documents[1:]]}


@pytest.mark.parametrize("filters", [{"region": "湖南"}, {"in_force": True}, "four of five"])
def test_a_filter_is_applied_inside_the_bounded_read(both, filters, monkeypatch):
    """A wide filter is applied to the postings' index entries read (no passage outside it is a candidate, and a deep
    enough read finds the embedded store's filtered ranking); a narrow one has its passages scored exactly."""
    import rag.store.postgres as pgstore

    embedder, embedded, pg, settings = both
    filters = _four_of_five(pg) if filters == "four of five" else filters
    allowed = Retriever(pg, embedder, settings).allowed_docs(filters)
    assert allowed
    question = "知识产权保护中心建设"
    exact = embedded.query(tokenize(question), None)
    want = exact.bm25_of(exact.bm25_top(20, allowed))
    for scan in (0, pgstore.SCOPE_SCAN):  # the impact-ordered read with the filter; the narrow filter's passages
        monkeypatch.setattr(pgstore, "SCOPE_SCAN", scan)
        query = pg.query(tokenize(question), None)
        top = query.bm25_top(20, allowed)
        assert set(query.doc_of(top)) <= allowed
        assert np.allclose(query.bm25_of(top), want, rtol=1e-5)
    monkeypatch.setattr(pgstore, "SCOPE_SCAN", 0)
    depth, pg.backend.bm25_depth = pg.backend.bm25_depth, 2
    try:
        query = pg.query(tokenize(question), None)
        top = query.bm25_top(200, allowed)
    finally:
        pg.backend.bm25_depth = depth
    # as many more entries read as the filter leaves passages out, up to READ_MAX times the depth
    scope = sum(pg.passage_counts()[d] for d in allowed)
    read = max(2, int(min(2 * len(pg) / scope, 2 * pgstore.READ_MAX)))
    terms = list(dict.fromkeys(tokenize(question)))
    assert set(query.doc_of(top)) <= allowed
    assert set(top.tolist()) <= _best_by_impact(pg, terms, read)
    if read > 2:  # the deeper read found passages a read of the depth alone would not have
        assert not set(top.tolist()) <= _best_by_impact(pg, terms, 2)


@pytest.mark.parametrize("scan", [0, 3_000])
def test_documents_in_force_are_found_by_the_end_year_column(both, scan, monkeypatch):
    """The in-force filter alone reaches PostgreSQL as a year (each document keeps its end year, indexed), not as
    thousands of names: the graph search (a wide filter), the narrow filter's scan and the postings' read find the
    embedded store's filtered neighbours and BM25 ranking."""
    import rag.store.postgres as pgstore

    embedder, embedded, pg, settings = both
    monkeypatch.setattr(pgstore, "SCOPE_SCAN", scan)
    allowed = Retriever(pg, embedder, settings).allowed_docs({"in_force": True})
    assert pg.scope(allowed).year is not None and "until_year" in pg.scope(allowed).condition
    assert 0 < len(allowed) < len(pg.documents)  # something expired today
    vector = embedder.embed_query("知识产权保护中心建设")
    top = pg.query([], vector).dense_top(20, allowed)
    want = embedded.query([], vector).dense_top(20, allowed)
    assert set(pg.query([], vector).doc_of(top)) <= allowed
    assert np.allclose(pg.query([], vector).dense_of(top), embedded.query([], vector).dense_of(want), atol=1e-5)
    tokens = tokenize("知识产权保护中心建设")
    exact, query = embedded.query(tokens, None), pg.query(tokens, None)
    top = query.bm25_top(20, allowed)
    assert set(query.doc_of(top)) <= allowed
    assert np.allclose(query.bm25_of(top), exact.bm25_of(exact.bm25_top(20, allowed)), rtol=1e-5)


def test_a_process_that_has_not_reloaded_never_takes_a_newer_document_for_one_it_knows(pg_settings, monkeypatch):
    """Document numbers and passage ids are never given twice, and a filter leaving documents out keeps out those
    added since the process loaded its list."""
    import rag.store.postgres as pgstore

    embedder = FakeEmbedder()
    stale, _ = ensure_index(pg_settings, embedder)
    last = stale.documents[-1]["doc_id"]
    remove_document(pg_settings, embedder, last)
    stale = Engine(pg_settings, embedder=embedder).index
    text = "青州市数据知识产权登记办法\n一、登记范围\n青州数据知识产权登记由青州市市场监督管理局负责。\n"
    added = add_documents(pg_settings, embedder, [("青州登记办法.txt", text.encode())]).added[0]
    fresh = Engine(pg_settings, embedder=embedder).index
    assert fresh.numbers[added] > max(stale.numbers.values())
    assert min(r for r in _passage_ids(fresh, added)) > max(_all_passage_ids(stale))
    monkeypatch.setattr(pgstore, "SCOPE_SCAN", 0)
    allowed = {d["doc_id"] for d in stale.documents[1:]}  # all but one: the filter names those left out
    top = stale.query(tokenize("青州数据知识产权登记"), None).bm25_top(50, allowed)
    assert not set(top.tolist()) & set(_passage_ids(fresh, added))
    assert set(fresh.query(tokenize("青州数据知识产权登记"), None).bm25_top(50, allowed | {added}).tolist()) & set(
        _passage_ids(fresh, added))


def _passage_ids(index, doc_id: str) -> list[int]:
    with index.backend.connection() as conn:
        rows = conn.execute("SELECT id FROM rag_passages WHERE doc_id = %s", (doc_id,)).fetchall()
        conn.rollback()
    return [r[0] for r in rows]


def _all_passage_ids(index) -> list[int]:
    return [i for d in index.documents for i in _passage_ids(index, d["doc_id"])]


# The postings and statistics as every database held them before impact-ordered reads
_EARLIER_LAYOUT = """
DROP INDEX rag_postings_impact; DROP INDEX rag_postings_doc;
ALTER TABLE rag_postings DROP CONSTRAINT rag_postings_pkey, DROP COLUMN doc, DROP COLUMN impact;
ALTER TABLE rag_postings ADD PRIMARY KEY (term, passage),
    ADD CONSTRAINT rag_postings_passage_fkey FOREIGN KEY (passage) REFERENCES rag_passages ON DELETE CASCADE;
CREATE INDEX rag_postings_passage ON rag_postings (passage);
ALTER TABLE rag_stats DROP COLUMN next_passage, DROP COLUMN next_doc;
DROP INDEX rag_documents_until; ALTER TABLE rag_documents DROP COLUMN until_year; DROP TABLE rag_forward;
"""


def test_a_database_of_the_earlier_layout_is_upgraded_in_place(pg_settings, monkeypatch):
    """Postings written before impacts and document numbers (PRIMARY KEY (term, passage), a foreign key and an index
    on passage, no id counters) get both on first load — the same impacts and numbers a fresh load writes — and
    then filter, remove and add as a fresh database does."""
    import rag.store.postgres as pgstore

    embedder = FakeEmbedder()
    index, _ = ensure_index(pg_settings, embedder)
    backend = index.backend

    def postings() -> dict:
        with backend.connection() as conn:
            rows = conn.execute("SELECT term, passage, doc, impact FROM rag_postings").fetchall()
            conn.rollback()
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}

    def ends() -> dict:
        with backend.connection() as conn:
            rows = conn.execute("SELECT doc_id, until_year FROM rag_documents").fetchall()
            conn.rollback()
        return dict(rows)

    def forward() -> dict:
        with backend.connection() as conn:
            rows = conn.execute("SELECT passage, length, hashes, tfs FROM rag_forward").fetchall()
            conn.rollback()
        return {r[0]: r[1:] for r in rows}

    written, until, rows = postings(), ends(), forward()
    assert len(rows) == len(index)
    assert None in until.values() and any(until.values())  # documents with and without a period
    with backend.connection() as conn:
        conn.execute(_EARLIER_LAYOUT)
        conn.commit()
    upgraded = backend.load(embedder)
    after = postings()
    assert ends() == until  # each document's end year, as a fresh load writes it
    assert forward() == rows  # and each passage's forward row
    assert after.keys() == written.keys()
    assert all(after[k][0] == written[k][0] and after[k][1] == pytest.approx(written[k][1], rel=1e-5) for k in written)
    with backend.connection() as conn:
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'rag_postings'")}
        keys = conn.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'rag_postings_passage_fkey'").fetchone()
        conn.rollback()
    assert {"rag_postings_impact", "rag_postings_doc"} <= indexes and "rag_postings_passage" not in indexes
    assert keys[0] == 0
    monkeypatch.setattr(pgstore, "SCOPE_SCAN", 0)
    allowed = {d["doc_id"] for d in upgraded.documents[1:]}
    tokens = tokenize("湖南专利转化目标是多少")
    top = upgraded.query(tokens, None).bm25_top(10, allowed)
    assert len(top) and set(upgraded.query(tokens, None).doc_of(top)) <= allowed
    # removing and adding afterwards keeps the statistics a fresh index of the same documents has
    remove_document(pg_settings, embedder, upgraded.documents[0]["doc_id"])
    text = "青州市数据知识产权登记办法\n一、登记范围\n青州数据知识产权登记由青州市市场监督管理局负责。\n"
    add_documents(pg_settings, embedder, [("青州登记办法.txt", text.encode())])
    now = Engine(pg_settings, embedder=embedder).index
    fresh, _ = ensure_index(pg_settings.replace(store="embedded", index_dir=pg_settings.data_dir.parent / "fresh"), embedder)
    for question in ("湖南专利转化目标是多少", "青州数据知识产权登记"):
        a, b = fresh.query(tokenize(question), None), now.query(tokenize(question), None)
        assert np.allclose(a.bm25_of(a.bm25_top(10)), b.bm25_of(b.bm25_top(10)), rtol=1e-5)


def test_a_document_added_through_one_server_is_answered_by_another(pg_settings):
    embedder = FakeEmbedder()
    ensure_index(pg_settings, embedder)
    first, second = Engine(pg_settings, embedder=embedder), Engine(pg_settings, embedder=embedder)
    assert len(second.index.documents) == 5
    text = "青州市数据知识产权登记办法\n一、登记范围\n数据知识产权登记由青州市市场监督管理局负责，登记费用全免。\n"
    report = add_documents(pg_settings, embedder, [("青州登记办法.txt", text.encode())])
    assert report.added
    assert second.refresh()  # the generation in the database moved: the other process reloads
    hits = second.retriever.search("青州数据知识产权登记由谁负责")
    assert hits[0].chunk.doc_id == report.added[0]
    remove_document(pg_settings, embedder, report.added[0])
    assert first.refresh() and all(d["doc_id"] != report.added[0] for d in first.index.documents)
    # statistics follow removals: BM25 over the database equals a fresh embedded index of the same documents
    fresh, _ = ensure_index(pg_settings.replace(store="embedded", index_dir=pg_settings.data_dir.parent / "fresh"), embedder)
    tokens = tokenize("数据知识产权登记办法")
    a, b = fresh.query(tokens, None), first.index.query(tokens, None)
    assert np.allclose(a.bm25_of(a.bm25_top(10)), b.bm25_of(b.bm25_top(10)), rtol=1e-5)


def test_a_database_of_another_embedder_is_refused_naming_both(pg_settings):
    ensure_index(pg_settings, FakeEmbedder())
    other = FakeEmbedder(dim=128)
    with pytest.raises(IndexMismatchError) as info:
        Engine(pg_settings, embedder=other).index  # noqa: B018
    assert "fake:hash-256" in info.value.user_message and "fake:hash-128" in info.value.user_message


def test_a_failed_add_leaves_the_database_as_it_was(pg_settings, monkeypatch):
    embedder = FakeEmbedder()
    before, _ = ensure_index(pg_settings, embedder)
    import rag.store.postgres as pgstore

    original = pgstore._insert

    def dies_half_way(conn, segment):
        original(conn, segment)  # passages, vectors and postings written, statistics updated…
        raise RuntimeError("killed before commit")

    monkeypatch.setattr(pgstore, "_insert", dies_half_way)
    with pytest.raises(RuntimeError):
        add_documents(pg_settings, embedder, [("半途.txt", "半途而废的文件\n一、事项\n这份文件不应出现在索引里。\n".encode())])
    monkeypatch.setattr(pgstore, "_insert", original)
    after = Engine(pg_settings, embedder=embedder).index
    assert len(after) == len(before) and [d["doc_id"] for d in after.documents] == [d["doc_id"] for d in before.documents]
    assert not (pg_settings.data_dir / "半途.txt").exists()
    tokens = tokenize("半途而废")
    assert after.query(tokens, None).bm25_top(5).size == 0


def test_an_unreachable_database_gives_a_clear_message_and_503_then_recovers(real_settings, server):
    from fastapi.testclient import TestClient

    from rag.web.api import create_api

    settings = real_settings.replace(store=create_database(server.url, "t_unreachable"), llm_backend="extractive")
    embedder = FakeEmbedder()
    ensure_index(settings, embedder)
    engine = Engine(settings, embedder=embedder)
    client = TestClient(create_api(settings, engine))
    assert client.post("/api/ask", json={"question": "湖南专利转化目标是多少"}).status_code == 200
    server.stop()
    try:
        fresh = Engine(settings, embedder=embedder)
        with pytest.raises(StoreUnavailableError) as info:
            fresh.index  # noqa: B018
        assert "无法连接检索数据库" in info.value.user_message and "127.0.0.1" in info.value.user_message
        response = client.post("/api/ask", json={"question": "湖南专利转化目标是多少"})
        assert response.status_code == 503 and "数据库" in response.json()["message"]
    finally:
        server.start()
    assert client.post("/api/ask", json={"question": "湖南专利转化目标是多少"}).status_code == 200


def test_rag_serve_starts_without_its_database_says_why_and_answers_503(real_settings):
    import os
    import subprocess
    import sys
    import time

    import httpx

    from rag.store.pglocal import free_port

    port = free_port()
    env = os.environ | {"RAG_STORE": f"postgresql://postgres@127.0.0.1:{free_port()}/gone", "RAG_EMBEDDER": "fake",
                        "RAG_DATA_DIR": str(real_settings.data_dir), "RAG_LLM_BACKEND": "extractive",
                        "RAG_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        first = proc.stdout.readline()
        assert "无法连接检索数据库" in first and "503" in first, first
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.post(f"http://127.0.0.1:{port}/api/ask", json={"question": "湖南专利转化目标"}, timeout=30)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.3)
        assert response.status_code == 503 and "数据库" in response.json()["message"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_a_document_added_here_is_answered_by_a_rag_serve_process_sharing_the_database(pg_settings):
    import httpx

    embedder = FakeEmbedder()
    ensure_index(pg_settings, embedder)
    with rag_serve(pg_settings) as base:
        text = "青州市数据知识产权登记办法\n一、登记机构\n数据知识产权登记由青州市市场监督管理局负责，登记费用全免。\n"
        added = add_documents(pg_settings, embedder, [("青州登记办法.txt", text.encode())]).added[0]
        answer = httpx.post(f"{base}/api/ask", json={"question": "青州数据知识产权登记由哪个部门负责"}, timeout=60).json()
        assert not answer["refused"] and answer["citations"][0]["doc_id"] == added
        assert "市场监督管理局" in answer["answer"]


def test_knowledge_bases_hold_on_postgresql_too(pg_settings):
    from tests.test_knowledge_bases import ALICE, BASES, STAFF, USERS, WUHAI, library

    client = library(pg_settings.replace(auth_users=USERS, user_groups="alice:dept-a", rate_limit_per_minute=0), BASES)
    found = client.get("/api/search", params={"q": "乌海 葡萄 特色品牌", "k": 10}, headers=STAFF).json()
    assert found and all(p["doc_id"] != "wuhai-2022" for p in found)
    assert client.get("/api/documents/wuhai-2022", headers=STAFF).status_code == 404
    answer = client.post("/api/ask", json={"question": WUHAI}, headers=ALICE).json()
    assert answer["citations"][0]["doc_id"] == "wuhai-2022"
    narrowed = client.get("/api/search", params={"q": "知识产权质押融资", "k": 10, "kb": "internal"}, headers=ALICE).json()
    assert {p["doc_id"] for p in narrowed} == {"wuhai-2022"}


def test_two_rag_serve_processes_share_the_limit_the_votes_and_the_questions(pg_settings, tmp_path):
    import time

    import httpx

    ensure_index(pg_settings, FakeEmbedder())
    # each with a votes file of its own: what they share is the database
    with rag_serve(pg_settings, RAG_RATE_LIMIT_PER_MINUTE="5", RAG_FEEDBACK_PATH=str(tmp_path / "a.jsonl")) as a, \
            rag_serve(pg_settings, RAG_RATE_LIMIT_PER_MINUTE="5", RAG_FEEDBACK_PATH=str(tmp_path / "b.jsonl")) as b:
        if time.time() % 60 > 40:  # the limit counts per minute: start the five requests early in one
            time.sleep(61 - time.time() % 60)
        answer = httpx.post(f"{a}/api/ask", json={"question": "乌海要打造哪些特色品牌？"}, timeout=60).json()  # 1
        vote = {"question": answer["question"], "answer": answer["answer"], "vote": "down", "comment": "太笼统",
                "answer_id": answer["answer_id"]}
        assert httpx.post(f"{b}/api/feedback", json=vote, timeout=30).status_code == 200  # 2, through the other process
        rows = httpx.get(f"{a}/api/feedback", params={"only": "down"}, timeout=30).json()
        assert [(r["answer_id"], r["vote"], r["comment"]) for r in rows] == [(answer["answer_id"], "down", "太笼统")]
        assert not (tmp_path / "a.jsonl").exists() and not (tmp_path / "b.jsonl").exists()  # in the database
        for base in (b, a, b):  # 3, 4, 5
            assert httpx.get(f"{base}/api/search", params={"q": "质押融资"}, timeout=30).status_code == 200
        limited = httpx.get(f"{a}/api/search", params={"q": "质押融资"}, timeout=30)  # 6: one limit for both processes
        assert limited.status_code == 429 and "请求过于频繁" in limited.json()["message"]


def test_conversations_and_the_browser_key_live_in_the_shared_database(pg_settings):
    import threading

    from rag.web.conversations import SharedConversationStore, conversation_store, shared_browser_secret

    one, other = conversation_store(pg_settings), conversation_store(pg_settings)  # two processes hold no state of their own
    assert isinstance(one, SharedConversationStore)
    first = one.add_turn("user:alice", None, [{"role": "user", "content": "乌海的目标？"},
                                              {"role": "assistant", "content": "4件[1]。"}], title="乌海的目标？")
    assert [c.id for c in other.list("user:alice")] == [first.id] and other.list("user:bob") == []
    other.rename("user:alice", first.id, "乌海规划")
    assert one.get("user:alice", first.id).title == "乌海规划"

    def ask(n: int) -> None:
        (one if n % 2 else other).add_turn("user:alice", first.id, [{"role": "user", "content": f"第{n}问"}])

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(one.get("user:alice", first.id).messages) == 2 + 8  # no turn lost to a concurrent write
    other.delete("user:alice", first.id)
    assert one.list("user:alice") == []
    assert not pg_settings.conversations_dir.exists() or not any(pg_settings.conversations_dir.iterdir())
    assert shared_browser_secret(pg_settings) == shared_browser_secret(pg_settings) != ""


def test_an_original_received_by_one_machine_is_shown_by_another(pg_settings, tmp_path):
    from fastapi.testclient import TestClient

    from rag.web.api import create_api
    from tests.makedocs import pdf_bytes

    embedder = FakeEmbedder()
    ensure_index(pg_settings, embedder)
    added = add_documents(pg_settings, embedder, [("海州专利转化.pdf", pdf_bytes())]).added[0]
    elsewhere = pg_settings.replace(data_dir=tmp_path / "other-machine", rate_limit_per_minute=0)  # no copy of the file
    (tmp_path / "other-machine").mkdir()
    client = TestClient(create_api(elsewhere, Engine(elsewhere, embedder=embedder)))
    image = client.get(f"/doc/{added}/page/2.jpg")
    assert image.status_code == 200 and image.content.startswith(b"\xff\xd8")
    remove_document(pg_settings, embedder, added)
    assert TestClient(create_api(elsewhere, Engine(elsewhere, embedder=embedder))).get(
        f"/doc/{added}/page/2.jpg").status_code == 404


def test_the_scale_benchmark_measures_both_stores_and_the_bounded_reads(tmp_path):
    """`rag bench --scale` builds a small synthetic library in each store and reports, for PostgreSQL, how many of the
    BM25 top 5 stay when every posting is read."""
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "scale.json"
    env = os.environ | {"RAG_INDEX_DIR": str(tmp_path / "index"), "RAG_PG_BM25_DEPTH": "50",
                        "RAG_BENCH_PG_BUFFERS": "256MB"}
    proc = subprocess.run([sys.executable, "-m", "rag.cli", "bench", "--scale", "600", "--stores", "embedded,postgresql",
                           "--out", str(out)], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {row["store"]: row for row in json.loads(out.read_text())}
    assert set(rows) == {"embedded", "postgresql"}
    assert rows["embedded"]["passages"] == rows["postgresql"]["passages"] >= 600
    assert 0.5 <= rows["postgresql"]["bm25_agreement"] <= 1.0 and "bm25_agreement" not in rows["embedded"]
    assert all(row["hybrid"][1] > 0 for row in rows.values())
    assert "BM25 top-5" in proc.stdout
