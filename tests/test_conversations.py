"""Conversations kept per person on the server, suggested follow-ups from real headings, corrected document facts."""

import json

import pytest

from rag.answer.pipeline import answer
from rag.errors import CorpusError, UnknownDocumentError
from rag.models.embedders import FakeEmbedder
from rag.store.library import ensure_index, update_facts
from rag.understand.suggest import heading_of, suggest_followups
from rag.web.conversations import MAX_TITLE, SHOWN_MESSAGES, ConversationError, ConversationStore, clean_title, shown
from tests.conftest import make_settings

TURN = [{"role": "user", "content": "乌海要打造哪些特色品牌？"},
        {"role": "assistant", "content": "乌海要打造……[1]", "metadata": {"id": "a1"}}]


def test_a_conversation_is_listed_renamed_and_deleted_for_its_owner_only(tmp_path):
    store = ConversationStore(tmp_path / "conversations")
    first = store.add_turn("user:alice", None, TURN, title="乌海要打造哪些特色品牌？")
    assert first.title == "乌海要打造哪些特色品牌？"
    store.add_turn("user:alice", first.id, TURN)
    assert [m["role"] for m in store.get("user:alice", first.id).messages] == ["user", "assistant"] * 2
    assert store.get("user:alice", first.id).messages[1]["metadata"] == {"id": "a1"}
    # another owner cannot read, extend, rename or delete it, even with its id
    for call in (lambda: store.get("user:bob", first.id), lambda: store.add_turn("user:bob", first.id, TURN),
                 lambda: store.rename("user:bob", first.id, "x"), lambda: store.delete("user:bob", first.id)):
        with pytest.raises(ConversationError, match="不属于当前用户"):
            call()
    assert store.list("user:bob") == []
    store.rename("user:alice", first.id, "<img src=x onerror=alert(1)>品牌")
    assert store.get("user:alice", first.id).title == "<img src=x onerror=alert(1)>品牌"  # kept as text; escaped when shown
    store.delete("user:alice", first.id)
    assert store.list("user:alice") == []
    # no user name reaches the file system
    assert all("alice" not in p.name for p in (tmp_path / "conversations").iterdir())


def test_titles_are_one_bounded_line():
    assert clean_title("  a\n\tb\u202e c  ") == "a b c"
    assert len(clean_title("长" * 500)) == MAX_TITLE
    assert clean_title("") == "未命名对话"


def test_a_huge_stored_conversation_shows_its_latest_turns_and_loses_nothing(tmp_path):
    store = ConversationStore(tmp_path)
    created = store.add_turn("browser:abcdefghijklmnopqrstuvwx", None, TURN, title="q")
    path = next(tmp_path.glob("*.json"))
    data = json.loads(path.read_text(encoding="utf-8"))
    data["conversations"][0]["messages"] = TURN * 5000  # 10,000 messages
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    conversation = store.get("browser:abcdefghijklmnopqrstuvwx", created.id)
    messages, hidden = shown(conversation)
    assert len(messages) == SHOWN_MESSAGES and messages[0]["role"] == "user" and hidden == 10_000 - SHOWN_MESSAGES
    store.add_turn("browser:abcdefghijklmnopqrstuvwx", created.id, TURN)
    assert len(store.get("browser:abcdefghijklmnopqrstuvwx", created.id).messages) == 10_002


def test_a_torn_or_foreign_file_reads_as_what_is_sane(tmp_path):
    store = ConversationStore(tmp_path)
    created = store.add_turn("user:a", None, TURN, title="q")
    path = next(tmp_path.glob("*.json"))
    path.write_text('{"conversations": [{"id": "x", "messages": "no"}, 3, {"title": "no id"}', encoding="utf-8")
    assert store.list("user:a") == []  # torn: nothing, not a crash
    path.write_text(json.dumps({"conversations": [{"id": "x", "title": 5, "updated": "z",
                                                    "messages": [{"role": "system", "content": {"a": 1}}, 7]}]}))
    [conversation] = store.list("user:a")
    assert conversation.messages == [{"role": "assistant", "content": '{"a": 1}'}]
    assert created.id != conversation.id


def test_an_unwritable_store_says_so_in_chinese(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    store = ConversationStore(blocker / "conversations")
    with pytest.raises(ConversationError, match="没有保存成功"):
        store.add_turn("user:a", None, TURN, title="q")


def test_follow_ups_name_headings_that_exist_next_to_the_cited_ones(real_engine):
    result = answer("乌海要打造哪些特色品牌？", engine=real_engine).to_dict()
    assert result["citations"]
    suggestions = suggest_followups(result, real_engine.document_view, real_engine.settings.vocab_dir)
    assert 1 <= len(suggestions) <= 3
    headings = {heading_of(c) for d in real_engine.index.documents for c in real_engine.index.chunks_of(d["doc_id"])}
    for text in suggestions:
        assert any(f"“{h}”" in text for h in headings if h), text
        assert text != result["question"]
    assert suggest_followups(result | {"refused": True}, real_engine.document_view, real_engine.settings.vocab_dir) == []


def test_an_administrator_corrects_a_documents_facts_and_only_it_is_re_indexed(real_corpus, tmp_path):
    settings = make_settings(real_corpus, tmp_path / "index")
    embedder = FakeEmbedder()
    index, _ = ensure_index(settings, embedder)
    doc = index.documents[0]
    report = update_facts(settings, embedder, doc["doc_id"], {"title": "更正后的标题", "date": "2024年3月1日",
                                                               "doc_number": "某发〔2024〕1号"})
    assert report.replaced == [doc["doc_id"]] and not report.added
    index, status = ensure_index(settings, embedder)
    assert status == "current"  # the change is in the manifest: a later `rag index` does nothing more
    changed = next(d for d in index.documents if d["doc_id"] == doc["doc_id"])
    assert changed["title"] == "更正后的标题"
    from rag.store.library import list_documents, today_of

    row = next(r for r in list_documents(index, today_of(settings)) if r["doc_id"] == doc["doc_id"])
    assert (row["title"], row["date"], row["doc_number"]) == ("更正后的标题", "2024-03-01", "某发〔2024〕1号")
    assert all(c.title == "更正后的标题" for c in index.chunks_of(doc["doc_id"]))
    with pytest.raises(CorpusError) as bad_date:
        update_facts(settings, embedder, doc["doc_id"], {"date": "明天"})
    assert "日期“明天”无法识别" in bad_date.value.user_message
    with pytest.raises(CorpusError) as too_long:
        update_facts(settings, embedder, doc["doc_id"], {"title": "长" * 201})
    assert "标题过长" in too_long.value.user_message
    with pytest.raises(UnknownDocumentError) as unknown:
        update_facts(settings, embedder, "no-such-doc", {"title": "x"})
    assert "没有编号" in unknown.value.user_message


def test_two_documents_with_one_title_are_each_reachable_by_the_scope_filter(real_corpus, tmp_path):
    """Issue 19 F13: the scope list names both, and each choice filters to its own document."""
    import ui
    from rag.engine import Engine

    for name in ("a.txt", "b.txt"):
        (real_corpus / name).write_text(f"同名办法\n第一条 {name} 的规定。\n", encoding="utf-8")
    settings = make_settings(real_corpus, tmp_path / "index")
    index, _ = ensure_index(settings, FakeEmbedder())
    engine = Engine(settings, embedder=FakeEmbedder(), index=index)
    twins = [c for c in ui.filter_choices(engine) if c.startswith("《同名办法》")]
    assert len(twins) == 2
    assert {ui.filters_from_choice(c, engine)["doc_id"][0] for c in twins} == {"a", "b"}


def test_the_upload_function_takes_only_files_uploaded_through_the_page(real_corpus, tmp_path):
    """Issue 19 F8: the Gradio upload function called by hand with a server path imports nothing."""
    import ui
    from rag.engine import Engine

    settings = make_settings(real_corpus, tmp_path / "index")
    index, _ = ensure_index(settings, FakeEmbedder())
    engine = Engine(settings, embedder=FakeEmbedder(), index=index)
    demo = ui.create_app(settings, engine)
    upload = next(fn.fn for fn in demo.fns.values() if getattr(fn.fn, "__name__", "") == "upload")
    secret = tmp_path / "secret.txt"
    secret.write_text("服务器上的私密文件\n第一条 不应被导入。\n", encoding="utf-8")

    class Local:  # the person at this machine, no login configured: an administrator
        username = None
        request = type("R", (), {"client": type("C", (), {"host": "127.0.0.1"})(), "headers": {},
                                    "scope": {"client": ("127.0.0.1", 50000)}})()

    message = upload([str(secret)], None, Local(), progress=lambda *a, **k: None)[0]
    assert "只能导入通过本页面上传的文件" in message
    assert not (real_corpus / "secret.txt").exists()
    assert ui.uploaded_here(secret) is False


def test_an_imported_upload_leaves_no_copy_in_gradios_folder(real_corpus, tmp_path):
    """Issue 19 F14: after the import the document lives in data/ only, so deleting it leaves nothing fetchable."""
    from pathlib import Path

    from gradio.utils import get_upload_folder

    import ui
    from rag.engine import Engine

    settings = make_settings(real_corpus, tmp_path / "index")
    index, _ = ensure_index(settings, FakeEmbedder())
    engine = Engine(settings, embedder=FakeEmbedder(), index=index)
    upload = next(fn.fn for fn in ui.create_app(settings, engine).fns.values()
                  if getattr(fn.fn, "__name__", "") == "upload")
    folder = Path(get_upload_folder()) / "test-upload-cleanup"
    folder.mkdir(parents=True, exist_ok=True)
    sent = folder / "丙市办法.txt"
    sent.write_text("丙市专利资助办法\n第一条 丙市对发明专利资助两千元。\n", encoding="utf-8")

    class Local:
        username = None
        request = type("R", (), {"client": type("C", (), {"host": "127.0.0.1"})(), "headers": {},
                                    "scope": {"client": ("127.0.0.1", 50000)}})()

    message = upload([str(sent)], None, Local(), progress=lambda *a, **k: None)[0]
    assert "已添加 1 篇" in message, message
    assert (real_corpus / "丙市办法.txt").exists() and not sent.exists()
