"""Issue 19, the knowledge base under limits and faults: conversion in a child process that is stopped at its time
limit (outside the writer lock, and in `rag index` too, so the server always starts), a passage limit per document,
and a full or read-only index directory: a Chinese message, nothing left behind, the library as it was."""

import datetime as dt
import errno
import fcntl
import threading
import time

import pytest

import rag.store.embedded as index_module
from rag.errors import CorpusError
from rag.ingest.convert_worker import ConvertWorker
from rag.models.embedders import FakeEmbedder
from rag.store.embedded import SEGMENTS
from rag.store.library import add_documents, ensure_index, list_documents, remove_document, sync_index

from .makedocs import docx_bytes


def slow_page(paragraphs: int = 60_000) -> bytes:
    """A legal web page that takes seconds to convert (a long body of short paragraphs)."""
    body = "".join(f"<p>第{i}条 本办法所称数据登记，是指登记机构依申请对数据资源进行登记的活动。</p>" for i in range(paragraphs))
    return f"<html><head><title>很长的网页</title></head><body><article>{body}</article></body></html>".encode()


GOOD = ("滨海数据登记办法.txt", "滨海市数据登记办法\n第一条 数据登记由市数据局负责，自受理之日起十个工作日内办结。\n".encode())


def test_a_conversion_over_its_time_limit_is_stopped_and_the_next_file_converts():
    with ConvertWorker(timeout_s=0.5) as worker:
        started = time.perf_counter()
        with pytest.raises(CorpusError) as stopped:
            worker.convert("很长的网页.html", slow_page())
        assert time.perf_counter() - started < 5
        assert "超过 0.5 秒，已停止" in stopped.value.user_message and "很长的网页.html" in stopped.value.user_message
        worker.timeout_s = 60
        assert "十个工作日" in worker.convert(*GOOD).text  # a fresh child
        assert worker.convert("办法.docx", docx_bytes()).format == "docx"


def test_a_file_the_child_cannot_read_gets_the_converters_own_message():
    with ConvertWorker(timeout_s=30) as worker:
        with pytest.raises(CorpusError) as failed:
            worker.convert("坏文件.docx", b"PK\x03\x04 not really a zip")
        assert "坏文件.docx" in failed.value.user_message and "无法读取" in failed.value.user_message
        with pytest.raises(CorpusError) as wrong_type:
            worker.convert("表格.xlsx", b"x")
        assert "不支持" in wrong_type.value.user_message


def _lock_is_free(index_dir) -> bool:
    with (index_dir / ".lock").open("a") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        return True


def test_an_upload_converts_outside_the_writer_lock_and_a_slow_file_is_reported_the_rest_added(real_settings):
    embedder = FakeEmbedder()
    ensure_index(real_settings, embedder)
    settings = real_settings.replace(convert_timeout_s=3.0)
    result = {}
    adding = threading.Thread(target=lambda: result.setdefault(
        "report", add_documents(settings, embedder, [("很长的网页.html", slow_page()), GOOD])))
    adding.start()
    time.sleep(1.0)  # the slow page is converting now
    free_while_converting = _lock_is_free(settings.index_dir)
    adding.join(timeout=60)
    assert free_while_converting, "another upload or delete must not wait for a conversion"
    report = result["report"]
    assert [f["file"] for f in report.failed] == ["很长的网页.html"]
    assert "已停止" in report.failed[0]["message"]
    assert len(report.added) == 1
    assert not (settings.data_dir / "很长的网页.html").exists()


def test_rag_index_skips_a_file_over_the_limit_reports_it_and_does_not_retry_it(real_settings):
    settings = real_settings.replace(convert_timeout_s=2.0)
    (settings.data_dir / "很长的网页.html").write_bytes(slow_page())
    index, report = sync_index(settings, FakeEmbedder())
    assert [f["file"] for f in report.failed] == ["很长的网页.html"]
    assert "已停止" in report.failed[0]["message"]
    assert len(index.documents) == 5  # the server starts on the other documents
    started = time.perf_counter()
    _index, again = sync_index(settings, FakeEmbedder())
    assert again.action == "unchanged" and time.perf_counter() - started < 2


def test_a_document_cut_into_more_passages_than_the_limit_is_refused_with_the_count(real_settings):
    embedder = FakeEmbedder()
    ensure_index(real_settings, embedder)
    settings = real_settings.replace(max_passages_per_document=5)
    articles = "".join(f"第{i}条 本条规定第{i}项登记事项，由登记机构依申请办理，并在十个工作日内作出决定。\n" for i in range(1, 80))
    report = add_documents(settings, embedder, [("长条例.txt", f"某某条例\n{articles}".encode()), GOOD])
    assert [f["file"] for f in report.failed] == ["长条例.txt"]
    assert "上限 5 段" in report.failed[0]["message"]
    assert len(report.added) == 1 and not (settings.data_dir / "长条例.txt").exists()


def _index_files(index_dir):
    return sorted(p.name for p in index_dir.iterdir()), sorted(p.name for p in (index_dir / SEGMENTS).iterdir())


def test_a_full_index_disk_leaves_no_partial_segment_and_changes_nothing(real_settings, monkeypatch):
    embedder = FakeEmbedder()
    ensure_index(real_settings, embedder)
    before_index = _index_files(real_settings.index_dir)
    before_data = sorted(p.name for p in real_settings.data_dir.iterdir())
    real_save = index_module.np.save

    def full_disk(path, array, *args, **kwargs):
        if str(path).endswith("vectors.npy"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(path, array, *args, **kwargs)

    monkeypatch.setattr(index_module.np, "save", full_disk)
    with pytest.raises(CorpusError) as failed:
        add_documents(real_settings, embedder, [GOOD])
    assert "磁盘已满" in failed.value.user_message
    assert _index_files(real_settings.index_dir) == before_index  # no partial segment keeps the disk full
    assert sorted(p.name for p in real_settings.data_dir.iterdir()) == before_data
    monkeypatch.undo()
    assert len(add_documents(real_settings, embedder, [GOOD]).added) == 1  # the next upload works


def test_a_read_only_index_directory_gets_a_chinese_message_for_add_remove_and_index(real_settings, monkeypatch):
    embedder = FakeEmbedder()
    ensure_index(real_settings, embedder)

    def read_only(_index_dir):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(index_module, "writer_lock", read_only)
    for call in (lambda: add_documents(real_settings, embedder, [GOOD]),
                 lambda: remove_document(real_settings, embedder, "hunan-2022"),
                 lambda: sync_index(real_settings, embedder, rebuild=True)):
        with pytest.raises(CorpusError) as failed:
            call()
        assert "无法写入索引目录" in failed.value.user_message
    assert (real_settings.data_dir / "hunan-2022-ip-strong-province-plan.txt").exists()


def test_a_remove_the_index_cannot_record_puts_the_file_back(real_settings, monkeypatch):
    embedder = FakeEmbedder()
    index, _ = ensure_index(real_settings, embedder)
    manifest = real_settings.data_dir / "manifest.json"
    manifest_before = manifest.read_bytes() if manifest.exists() else None

    def full_disk(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(index_module, "commit_generation", full_disk)
    with pytest.raises(CorpusError) as failed:
        remove_document(real_settings, embedder, "hunan-2022")
    assert "文档没有被删除" in failed.value.user_message
    monkeypatch.undo()
    assert (real_settings.data_dir / "hunan-2022-ip-strong-province-plan.txt").exists()
    assert (manifest.read_bytes() if manifest.exists() else None) == manifest_before
    index, status = ensure_index(real_settings, embedder)
    assert status == "current"
    assert "hunan-2022" in {row["doc_id"] for row in list_documents(index, dt.date.today())}


def test_messages_echo_at_most_a_bounded_part_of_what_the_client_sent(real_settings):
    """Issue 19 F14: a huge file name or document id is not echoed whole, nor is every document of the library."""
    embedder = FakeEmbedder()
    ensure_index(real_settings, embedder)
    settings = real_settings.replace(max_upload_mb=0)
    report = add_documents(settings, embedder, [("长" * 5000 + ".txt", b"x" * 10)])
    assert len(report.failed[0]["file"]) <= 81 and len(report.failed[0]["message"]) < 200
    with pytest.raises(CorpusError) as unknown:
        remove_document(real_settings, embedder, "x" * 2000)
    assert len(unknown.value.user_message) < 400 and "hunan-2022" in unknown.value.user_message
