"""Conversion in a child process that can be stopped.

A file's bytes go to one child process (reused for a batch); the parent waits at most `timeout_s` for its text. A
file that takes longer (a PDF whose pages never end, a Word file that expands without end) has its child killed and
becomes a CorpusError saying so in Chinese; the next file gets a fresh child. The child's address space is capped
(`memory_mb`), so a file that would take the machine's memory fails alone instead. Uploads convert through this
before they take the writer lock, and `rag index` converts through it too, so a file over a limit is skipped and
reported and the server always starts.

The time limit is on silence, not on the whole file: a scanned PDF read by OCR page by page reports each page
(`progress`), and each report starts the wait again — a 100-page scan takes minutes and is not stopped, a page that
never finishes is.

A conversion that needed OCR (the expensive kind) is kept in `cache_dir`, keyed by the file's bytes, the OCR
options and the OCR engine's version, so rebuilding the index does not read the same scan again.

`timeout_s <= 0` converts in this process (tests that swap converters, and callers that know their files).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing as mp
import os
from multiprocessing.connection import Connection
from pathlib import Path

from rag.errors import CorpusError
from rag.ingest.converters import Extracted, OcrOptions, PageProgress, check_supported, convert


def _serve(conn: Connection, memory_mb: int) -> None:
    """The child: convert what arrives until told to stop (None)."""
    if memory_mb > 0:
        import resource

        limit = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        name, raw, ocr = job
        try:
            conn.send(("ok", convert(name, raw, ocr, lambda done, total: conn.send(("progress", done, total)))))
        except CorpusError as exc:
            conn.send(("error", str(exc), exc.user_message))
        except MemoryError:
            conn.send(("error", f"{name}: out of memory ({memory_mb} MB) while converting",
                       f"文件 {name} 转换时所需内存超过上限（{memory_mb} MB），已停止；请拆分文件后重试。"))


class ConvertWorker:
    """`convert(name, raw)` as `rag.ingest.converters.convert` has it, run in a child process with a time limit.

    Use as a context manager (or call `close`): the child lives for one batch of files."""

    def __init__(self, timeout_s: float, memory_mb: int = 0, ocr: OcrOptions | None = None,
                 cache_dir: Path | None = None):
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.ocr = ocr or OcrOptions()
        self.cache_dir = cache_dir
        self._process: mp.process.BaseProcess | None = None
        self._conn: Connection | None = None

    def __enter__(self) -> ConvertWorker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def convert(self, name: str, raw: bytes, progress: PageProgress | None = None) -> Extracted:
        """The file's text; `progress(done, total)` is told of each page or picture OCR reads."""
        cached = self._cached(name, raw)
        if cached is not None:
            return cached
        if self.timeout_s <= 0:
            return self._keep(name, raw, convert(name, raw, self.ocr, progress))
        check_supported(name)  # the type message needs no child
        conn = self._started()
        try:
            conn.send((name, raw, self.ocr))
            while True:
                reply = conn.recv() if conn.poll(self.timeout_s) else None
                if reply is None or reply[0] != "progress":
                    break
                if progress is not None:
                    progress(reply[1], reply[2])
        except (EOFError, OSError, BrokenPipeError):
            self._stop()
            raise CorpusError(f"{name}: the conversion process died",
                              f"文件 {name} 转换时出错（转换进程意外退出），已停止；请检查文件后重试。") from None
        if reply is None:
            self._stop()
            raise CorpusError(f"{name}: conversion took over {self.timeout_s:g} s and was stopped",
                              f"文件 {name} 转换超过 {self.timeout_s:g} 秒，已停止；"
                              "请拆分文件，或另存为 .docx / .txt 后重试。")
        if reply[0] == "ok":
            return self._keep(name, raw, reply[1])
        raise CorpusError(reply[1], reply[2])

    def _cache_path(self, name: str, raw: bytes) -> Path | None:
        if self.cache_dir is None:
            return None
        from rag.ingest.ocr import engine_version

        digest = hashlib.sha256(raw)
        digest.update(f"{os.path.splitext(name)[1].lower()}|{self.ocr}|{engine_version()}".encode())
        return self.cache_dir / f"{digest.hexdigest()[:32]}.json"

    def _cached(self, name: str, raw: bytes) -> Extracted | None:
        path = self._cache_path(name, raw)
        if path is None or not path.exists():
            return None
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
            return Extracted(**fields)
        except (OSError, ValueError, TypeError):
            return None  # a damaged cache entry: read the file again

    def _keep(self, name: str, raw: bytes, extracted: Extracted) -> Extracted:
        """Keep a conversion that needed OCR; anything else is quick to redo and is not kept."""
        path = self._cache_path(name, raw) if extracted.ocr_pages or extracted.ocr_pictures else None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".partial")
                tmp.write_text(json.dumps(dataclasses.asdict(extracted), ensure_ascii=False), encoding="utf-8")
                tmp.replace(path)
            except OSError:
                pass  # a cache that cannot be written costs time, not correctness
        return extracted

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.send(None)
            except (OSError, BrokenPipeError):
                pass
        if self._process is not None:
            self._process.join(timeout=2)
        self._stop()

    def _started(self) -> Connection:
        if self._process is None or not self._process.is_alive():
            self._stop()
            context = mp.get_context("spawn")  # no copy of a threaded server's state
            parent, child = context.Pipe()
            self._process = context.Process(target=_serve, args=(child, self.memory_mb), daemon=True,
                                            name="rag-convert")
            self._process.start()
            child.close()
            self._conn = parent
        assert self._conn is not None
        return self._conn

    def _stop(self) -> None:
        if self._process is not None and self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=5)
        if self._conn is not None:
            self._conn.close()
        self._process, self._conn = None, None
