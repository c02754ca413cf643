"""The knowledge base: the documents of `data/` and the index kept in step with them.

One set of calls for every front end (CLI, API, web UI):
  sync_index      `rag index`: re-reads only files whose bytes or manifest entry changed; nothing changed → nothing done
  add_documents   `rag add`, upload: checks and converts every file first, then indexes only those documents
  remove_document `rag remove`, delete: hides the document's passages; its file moves to data/.removed/
  list_documents  `rag documents`: facts, validity and passage counts

`data/` is the source of truth. A file is written there before the index changes, so an interrupted add leaves the
index as it was (the next `rag index` picks the file up); a removed file leaves `data/` before the index forgets it.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rag.errors import CorpusError, RagError, UnknownDocumentError
from rag.ingest.chunking import MIN_BODY_CHARS, Chunk, body_chars, chunk_corpus
from rag.ingest.convert_worker import ConvertWorker
from rag.ingest.converters import SUPPORTED, Extracted, OcrOptions, PageProgress
from rag.ingest.docfacts import facts_from_json, iso_date, validity
from rag.ingest.documents import (
    MANIFEST_NAME,
    Document,
    assign_doc_ids,
    corpus_files,
    file_fingerprint,
    load_document,
    read_manifest,
)
from rag.language.vocab import use_vocabulary
from rag.models.embedders import Embedder
from rag.settings import Settings
from rag.store.backends import backend_for
from rag.store.base import Index
from rag.store.segments import Progress, chunker_config, expected_signature, make_segment, new_config

REMOVED_DIR = ".removed"



OCR_CACHE = "ocr-cache"  # in the index directory: conversions that needed OCR, keyed by the file's bytes
Reading = Callable[[str, int, int], None]  # (file, pages or pictures read by OCR so far, to read)
# Files being read by OCR right now, for the administrators (GET /api/documents/reading and the library tab): a long
# scan shows its page count going up while questions are answered as usual.
_READING: dict[str, dict] = {}
_READING_LOCK = threading.Lock()


def reading_now() -> list[dict]:
    """The files OCR is reading now: file, pages read, pages in all, seconds since it started."""
    now = time.monotonic()
    with _READING_LOCK:
        return [{"file": name, "done": r["done"], "total": r["total"], "seconds": round(now - r["started"], 1)}
                for name, r in _READING.items()]


@contextmanager
def _reading(name: str, callback: Reading | None) -> Iterator[PageProgress]:
    """A progress function for one file's conversion: it updates the registry and tells `callback`."""
    started = time.monotonic()

    def report(done: int, total: int) -> None:
        with _READING_LOCK:
            _READING[name] = {"done": done, "total": total, "started": started}
        if callback is not None:
            callback(name, done, total)

    try:
        yield report
    finally:
        with _READING_LOCK:
            _READING.pop(name, None)

@dataclass
class Report:
    """What a change did, for people (`message`) and scripts (the rest)."""

    action: str  # unchanged | built | updated | added | removed | nothing
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # {"file", "message"}
    passages_embedded: int = 0
    seconds: float = 0.0
    documents: list[dict] = field(default_factory=list)  # rows of list_documents for the documents added

    def to_dict(self) -> dict:
        return asdict(self) | {"message": self.message}

    @property
    def message(self) -> str:
        parts = []
        if self.action == "unchanged":
            parts.append("文档没有变化，索引无需更新。")
        if self.added:
            parts.append(f"已添加 {len(self.added)} 篇：{'、'.join(self.added)}")
        if self.replaced:
            parts.append(f"已更新 {len(self.replaced)} 篇：{'、'.join(self.replaced)}")
        if self.removed:
            parts.append(f"已删除 {len(self.removed)} 篇：{'、'.join(self.removed)}")
        if self.passages_embedded:
            parts.append(f"嵌入 {self.passages_embedded} 个段落，用时 {self.seconds:.1f} 秒")
        for failure in self.failed:
            parts.append(f"未导入：{failure['message']}")
        return "；".join(parts) or "没有可导入的文件。"


def _signature_changes(config: dict | None, settings: Settings, embedder: Embedder) -> list[str]:
    if config is None:
        return ["no index yet"]
    return [key for key, value in expected_signature(settings, embedder).items() if config.get(key) != value]


@dataclass
class _File:
    path: Path
    doc_id: str
    entry: dict
    fingerprint: str


def _scan(data_dir: Path, taken: dict[str, str]) -> list[_File]:
    """Every document file with its id and fingerprint (bytes are hashed, not converted)."""
    if not data_dir.is_dir():
        raise CorpusError(f"{data_dir}: no such directory", f"文档目录 {data_dir} 不存在。")
    manifest = read_manifest(data_dir)
    paths = corpus_files(data_dir)
    ids = assign_doc_ids(paths, manifest, taken)
    out = []
    for path in paths:
        entry = manifest.get(path.name) or {}
        try:
            raw = path.read_bytes()
        except OSError:
            continue
        out.append(_File(path, ids[path.name], entry, file_fingerprint(raw, entry)))
    return out


def index_status(settings: Settings, embedder: Embedder) -> tuple[str, str]:
    """('missing' | 'stale' | 'current' | 'unknown', why) without loading the index."""
    config = backend_for(settings).read_config()
    if config is None:
        return "missing", "no index yet"
    changed = _signature_changes(config, settings, embedder)
    if changed:
        return "stale", "changed: " + ", ".join(changed)
    try:
        files = _scan(settings.data_dir, config.get("files", {}))
    except CorpusError as exc:  # an index copied without its documents still answers
        return "unknown", f"documents not readable ({exc})"
    known, skipped = config.get("fingerprints", {}), config.get("skipped", {})
    new = [f.path.name for f in files if known.get(f.doc_id) != f.fingerprint and skipped.get(f.path.name) != f.fingerprint]
    gone = sorted(set(known) - {f.doc_id for f in files})
    if new or gone:
        return "stale", "changed: documents " + ", ".join(new + gone)
    return "current", "up to date"


def sync_index(settings: Settings, embedder: Embedder, rebuild: bool = False,
               progress: Progress | None = None, reading: Reading | None = None) -> tuple[Index, Report]:
    """Bring the index in step with `data/`: only new, changed and vanished documents are touched.

    A build that fails (no readable document, model error) raises before anything on disk changes."""
    with _locked(backend_for(settings)):
        try:
            return _sync_locked(settings, embedder, rebuild, progress, reading)
        except OSError as exc:
            raise _index_error(exc) from exc


def _sync_locked(settings: Settings, embedder: Embedder, rebuild: bool = False,
                 progress: Progress | None = None, reading: Reading | None = None,
                 allow_empty: bool = False) -> tuple[Index, Report]:
    """`allow_empty`: a library with no document yet is a valid start (`rag add` into a new library), not an error."""
    started = time.perf_counter()
    use_vocabulary(settings.vocab_dir)  # titles and chrome lines are read with these settings' vocabulary
    _drop_leftovers(settings.data_dir, settings.removed_keep_days)
    store = backend_for(settings)
    config = store.read_config()
    full = rebuild or bool(_signature_changes(config, settings, embedder))
    known = {} if full or config is None else config.get("fingerprints", {})
    skipped_before = {} if full or config is None else config.get("skipped", {})
    files = _scan(settings.data_dir, {} if full or config is None else config.get("files", {}))
    todo = [f for f in files if known.get(f.doc_id) != f.fingerprint and skipped_before.get(f.path.name) != f.fingerprint]
    gone = set(known) - {f.doc_id for f in files}
    if not full and not todo and not gone:
        return store.load(embedder), Report("unchanged", seconds=time.perf_counter() - started)
    documents, skipped = [], {k: v for k, v in skipped_before.items() if k in {f.path.name for f in files}}
    messages = dict((config or {}).get("skipped_messages", {})) if not full else {}
    failed = []
    prints = {f.doc_id: f.fingerprint for f in todo}
    with _worker(settings) as worker:
        for f in todo:
            try:
                with _reading(f.path.name, reading) as told:
                    doc = load_document(f.path, f.entry or None, doc_id=f.doc_id,
                                        convert=functools.partial(worker.convert, progress=told))
            except CorpusError as exc:
                skipped[f.path.name], messages[f.path.name] = f.fingerprint, exc.user_message
                failed.append({"file": f.path.name, "message": exc.user_message})
                continue
            skipped.pop(f.path.name, None)
            messages.pop(f.path.name, None)
            documents.append(doc)
    documents, chunks, too_long = _chunked(documents, settings)
    for doc, message in too_long:
        skipped[doc.path.name], messages[doc.path.name] = prints[doc.doc_id], message
        failed.append({"file": doc.path.name, "message": message})
    if full and not documents and not (allow_empty and not files):
        raise CorpusError(f"{settings.data_dir}: no readable documents",
                          f"文档目录 {settings.data_dir} 中没有可读取的文档（.txt .md .docx .pdf .html）。")
    segment = make_segment(documents, settings, embedder, progress, chunks=chunks) if documents else None
    base = new_config(settings, embedder) | {"_replace_all": True} if full or config is None else config
    base = base | {"skipped": skipped, "skipped_messages": messages,
                   "files": {k: v for k, v in (base.get("files", {})).items() if k not in gone}
                   | {d.doc_id: d.path.name for d in documents}}
    store.apply_changes(base, segment, gone, {d.doc_id: d.fingerprint for d in documents},
                  skipped=sorted(messages.items()))
    index = store.load(embedder)
    before = set(known)
    return index, Report("built" if full else "updated",
                     added=[d.doc_id for d in documents if d.doc_id not in before],
                     replaced=[d.doc_id for d in documents if d.doc_id in before], removed=sorted(gone),
                     failed=failed, passages_embedded=len(segment.chunks) if segment else 0,
                     seconds=time.perf_counter() - started)


def _shown(text: str, limit: int = 80) -> str:
    """What a message echoes of a name the client sent: at most `limit` characters."""
    return text if len(text) <= limit else text[:limit] + "…"


def _worker(settings: Settings) -> ConvertWorker:
    """The child process files are converted in, with the settings' limits; conversions that needed OCR are kept in
    the index directory (`ocr-cache/`), so a rebuild does not read the same scans again."""
    ocr = OcrOptions(settings.ocr, settings.ocr_max_pages, settings.ocr_scale)
    return ConvertWorker(settings.convert_timeout_s, settings.convert_memory_mb, ocr, settings.index_dir / OCR_CACHE)


def _chunked(documents: list[Document], settings: Settings) -> tuple[list[Document], list[Chunk], list]:
    """Passages of each document; a document cut into more than `max_passages_per_document` is left out, with the
    Chinese message saying why: (documents kept, their passages, [(document, message)])."""
    config = chunker_config(settings)
    kept, chunks, refused = [], [], []
    for doc in documents:
        found = chunk_corpus([doc], config)
        if not found or body_chars(doc) < MIN_BODY_CHARS:
            refused.append((doc, f"文件 {doc.path.name} 只有标题或章节名，没有正文，没有导入；请检查文件是否完整。"))
            continue
        if settings.max_passages_per_document and len(found) > settings.max_passages_per_document:
            refused.append((doc, f"文件 {doc.path.name} 切分后有 {len(found)} 段（上限 "
                                 f"{settings.max_passages_per_document} 段），没有导入；请拆分成几个文件后重试。"))
            continue
        kept.append(doc)
        chunks += found
    return kept, chunks, refused


def _drop_leftovers(data_dir: Path, removed_keep_days: float = 0) -> None:
    """What an add killed mid-way leaves in data/ (a `.partial-*` being written, a `.backup-*` of a replaced file): under
    the writer lock no add is running, and the file in data/ is the one this sync indexes, so they are garbage. The
    originals of removed documents (data/.removed/) are kept `removed_keep_days` (RAG_REMOVED_KEEP_DAYS; 0 keeps them)."""
    if not data_dir.is_dir():
        return
    leftovers = [*data_dir.glob(".partial-*"), *data_dir.glob(".backup-*")]
    if removed_keep_days > 0 and (data_dir / REMOVED_DIR).is_dir():
        cutoff = time.time() - removed_keep_days * 86400
        leftovers += [f for f in (data_dir / REMOVED_DIR).iterdir() if f.is_file() and f.stat().st_mtime < cutoff]
    for leftover in leftovers:
        try:
            leftover.unlink()
        except OSError:
            pass


def ensure_index(settings: Settings, embedder: Embedder, rebuild: bool = False,
                 progress: Progress | None = None) -> tuple[Index, str]:
    """Load the index, building or updating it first when `data/` or the build settings changed."""
    index, report = sync_index(settings, embedder, rebuild, progress)
    if report.action == "unchanged":
        return index, "current"
    return index, f"built ({report.message})" if report.action == "built" else f"updated ({report.message})"


# ---------------------------------------------------------------- adding and removing

MAX_NAME_BYTES = 150  # file systems allow 255 bytes; a Chinese character is 3 of them, and backups add a prefix


def safe_file_name(name: str) -> str:
    """A file name for `data/`: no directories, no leading dots, nothing a shell or URL chokes on, at most
    MAX_NAME_BYTES in UTF-8 with its extension kept (a long Chinese name is shortened, never cut into its suffix)."""
    base = Path(str(name).replace("\\", "/")).name.strip().lstrip(".")
    base = "".join(ch if ch.isalnum() or ch in "-_.（）()" or "\u4e00" <= ch <= "\u9fff" else "-" for ch in base)
    stem, dot, suffix = base.rpartition(".")
    if not dot or len(suffix) > 8:
        stem, suffix = base, ""
    ending = f".{suffix}" if suffix else ""
    if len((stem + ending).encode("utf-8")) > MAX_NAME_BYTES:
        # two long names that share their beginning must not become one file (the second would replace the first):
        # the shortened stem ends with a digest of the whole name, so the same long name still maps to the same file
        digest = "-" + hashlib.sha1(base.encode("utf-8")).hexdigest()[:8]
        while stem and len((stem + digest + ending).encode("utf-8")) > MAX_NAME_BYTES:
            stem = stem[:-1]
        stem += digest
    return (stem + ending) if stem else ("document" + ending if ending else "document.txt")


def unique_names(names: list[str]) -> list[str]:
    """The batch's file names made distinct: two 通知.pdf from different folders become 通知.pdf and 通知-2.pdf."""
    seen: set[str] = set()
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            stem, dot, suffix = name.rpartition(".")
            candidate = f"{stem}-{n}.{suffix}" if dot else f"{name}-{n}"
        seen.add(candidate)
        out.append(candidate)
    return out


FACT_FIELDS = {"title": ("标题", 200), "issuer": ("发文机关", 100), "region": ("地区", 40), "date": ("日期", 40),
               "doc_number": ("文号", 60)}


def checked_facts(facts: dict | None) -> dict:
    """A document's facts as an administrator typed them: known fields only, one line each, bounded, a real date.
    Raises CorpusError (a Chinese message) instead of storing something that breaks the index or the table."""
    out = {}
    for key, value in (facts or {}).items():
        if key not in FACT_FIELDS:
            raise CorpusError(f"unknown fact {key!r}", f"不能修改“{str(key)[:20]}”：只能修改标题、发文机关、地区、日期、文号。")
        label, limit = FACT_FIELDS[key]
        text = " ".join(str(value or "").split())
        if len(text) > limit:
            raise CorpusError(f"{key} too long", f"{label}过长（{len(text)} 字），最多 {limit} 字。")
        if key == "date" and text:
            if not iso_date(text):
                raise CorpusError(f"bad date {text[:40]!r}", f"日期“{text[:40]}”无法识别，请写成 2024-03-01 或 2024年3月1日。")
            text = iso_date(text)
        if text:
            out[key] = text
    return out


def update_facts(settings: Settings, embedder: Embedder, doc_id: str, facts: dict) -> Report:
    """Correct a document's title / issuer / region / date / 文号: stored in the manifest (the file is untouched), and
    only that document is re-read and re-indexed (its title is in every passage's header). An empty field means the
    value read from the document itself."""
    changes = checked_facts(facts)
    store = backend_for(settings)
    with _locked(store):
        config = store.read_config()
        files = (config or {}).get("files", {})
        if config is None or doc_id not in files:
            raise UnknownDocumentError(f"unknown document {doc_id!r}", f"没有编号为“{doc_id[:80]}”的文档。")
        name = files[doc_id]
        manifest = read_manifest(settings.data_dir)
        entry = {k: v for k, v in (manifest.get(name) or {}).items() if k not in FACT_FIELDS}
        manifest_path = settings.data_dir / MANIFEST_NAME
        manifest_before = manifest_path.read_bytes() if manifest_path.exists() else None
        try:
            _update_manifest(settings.data_dir, {name: entry | {"file": name, "doc_id": doc_id} | changes})
            _index, report = _sync_locked(settings, embedder)
        except OSError as exc:
            if manifest_before is not None:
                manifest_path.write_bytes(manifest_before)
            raise _index_error(exc) from exc
    report.action = "updated"
    return report


def add_documents(settings: Settings, embedder: Embedder, files: list[tuple[str, bytes]],
                  overrides: dict | None = None, progress: Progress | None = None,
                  reading: Reading | None = None, kb: str = "", default_kb: str = "") -> Report:
    """Add (or replace, same file name) documents: each file is checked and converted first, and a file that fails
    is reported without touching anything; the rest are written to `data/` and indexed in one new segment.

    `overrides`: title / issuer / region / date / doc_number for these documents (stored in the manifest).
    `progress`: told of passages embedded; `reading`: told of each page or picture OCR reads, per file.
    `kb`: the knowledge base the documents go into (stored in the manifest; rag/store/bases.py); a file of that
    name in another base (`default_kb` for documents that name none) is not replaced but reported."""
    started = time.perf_counter()
    overrides = checked_facts({k: v for k, v in (overrides or {}).items() if v}) | ({"kb": kb} if kb else {})
    limit = settings.max_upload_mb * 1024 * 1024
    report = Report("nothing")
    accepted: list[tuple[str, bytes, Document]] = []
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _write_error(exc) from exc
    # conversion first, outside the writer lock and in a child process with limits: a slow file blocks nobody
    names = unique_names([safe_file_name(original) for original, _ in files])
    converted: dict[str, Extracted] = {}
    originals = dict(zip(names, (_shown(original) for original, _ in files), strict=True))
    with _worker(settings) as worker:
        for (original_name, raw), name in zip(files, names, strict=True):
            original_name = _shown(original_name)
            if len(raw) > limit:
                report.failed.append({"file": original_name, "message": f"文件 {original_name} 过大"
                                      f"（{len(raw) / 1024 / 1024:.1f} MB），上限 {settings.max_upload_mb} MB。"})
                continue
            try:
                with _reading(original_name, reading) as told:
                    converted[name] = worker.convert(name, raw, told)
            except CorpusError as exc:
                report.failed.append({"file": original_name, "message": exc.user_message})
    if not converted:
        return report
    store = backend_for(settings)
    with _locked(store):
        config = store.read_config()
        if _signature_changes(config, settings, embedder):
            _sync_locked(settings, embedder, allow_empty=True)
            config = store.read_config()
        assert config is not None  # an index with no record has changed signature: the sync above wrote one
        manifest = read_manifest(settings.data_dir)
        taken = dict(config.get("files", {})) if config else {}
        entries: dict[str, dict] = {}
        for (original_name, raw), name in zip(files, names, strict=True):
            if name not in converted:
                continue
            original_name = _shown(original_name)
            if kb and (settings.data_dir / name).exists() and ((manifest.get(name) or {}).get("kb") or default_kb) != kb:
                report.failed.append({"file": original_name, "message": f"文件 {original_name} 与另一个知识库中的文档同名，"
                                      "没有替换它；请改名后再上传。"})
                continue
            doc_id = assign_doc_ids([settings.data_dir / name], manifest, taken)[name]
            entry = (manifest.get(name) or {}) | ({"file": name, "doc_id": doc_id} | overrides if overrides else {})
            try:
                doc = load_document(settings.data_dir / name, entry or None, raw, doc_id=doc_id,
                                    convert=lambda n, _raw: converted[n])
            except CorpusError as exc:
                report.failed.append({"file": original_name, "message": exc.user_message})
                continue
            taken[doc.doc_id] = name
            entries[name] = entry
            accepted.append((name, raw, doc))
        kept, chunks, too_long = _chunked([doc for _, _, doc in accepted], settings)
        for doc, message in too_long:
            report.failed.append({"file": originals[doc.path.name], "message": message})
        kept_ids = {id(doc) for doc in kept}
        accepted = [a for a in accepted if id(a[2]) in kept_ids]
        if not accepted:
            return report
        before = set((config or {}).get("fingerprints", {}))
        manifest_path = settings.data_dir / MANIFEST_NAME
        manifest_before = manifest_path.read_bytes() if manifest_path.exists() else None
        try:
            backups = _write_files(settings.data_dir, [(name, raw) for name, raw, _ in accepted])
        except OSError as exc:
            raise _write_error(exc) from exc
        try:
            if overrides:
                _update_manifest(settings.data_dir, {name: entries[name] for name, _, _ in accepted})
            documents = [doc for _, _, doc in accepted]
            segment = make_segment(documents, settings, embedder, progress, chunks=chunks)
            base = config | {"files": config.get("files", {}) | {d.doc_id: d.path.name for d in documents}}
            store.apply_changes(base, segment, set(), {d.doc_id: d.fingerprint for d in documents})
        except BaseException as exc:
            # one transaction: data/, the manifest and the index all stay as they were
            _restore(settings.data_dir, backups)
            if manifest_before is not None:
                manifest_path.write_bytes(manifest_before)
            elif overrides:
                manifest_path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise _write_error(exc) from exc
            raise
        _discard(backups)
        _share_originals(settings, [(d.doc_id, d.path.name, raw) for name, raw, d in accepted])
    report.action = "added"
    report.added = [d.doc_id for d in documents if d.doc_id not in before]
    report.replaced = [d.doc_id for d in documents if d.doc_id in before]
    report.passages_embedded = len(segment.chunks)
    report.seconds = time.perf_counter() - started
    today = today_of(settings)
    counts = {d.doc_id: 0 for d in documents}
    for chunk in segment.chunks:
        counts[chunk.doc_id] += 1
    report.documents = [document_row(d.metadata(), counts[d.doc_id], today) for d in documents]
    return report


def _share_originals(settings: Settings, files: list[tuple[str, str, bytes]]) -> None:
    """With the index on PostgreSQL, the originals go to the database too (rag/store/shared.py): any process then shows
    a PDF's pages. A database that fails here costs the other machines the page images, not the document."""
    from rag.store.shared import keep_originals, shared

    if shared(settings) and files:
        try:
            keep_originals(settings, files)
        except RagError as exc:
            import logging

            logging.getLogger(__name__).warning("originals not shared: %s", exc)


@contextmanager
def _locked(store) -> Iterator[None]:
    """The writer lock, with a Chinese message when the index directory cannot even hold its lock file."""
    stack = ExitStack()
    try:
        stack.enter_context(store.writer_lock())
    except OSError as exc:
        raise _index_error(exc) from exc
    with stack:
        yield


def _index_error(exc: OSError) -> CorpusError:
    return CorpusError(f"cannot write the index: {exc}",
                       "无法写入索引目录（磁盘已满或目录只读？）；文档库和索引都没有改变，请处理后重试。")


def _write_error(exc: OSError) -> CorpusError:
    return CorpusError(f"cannot write the library: {exc}",
                       "无法写入文档库（磁盘已满或目录只读？）；本次上传没有改变任何文档，请处理后重试。")


def _write_files(data_dir: Path, files: list[tuple[str, bytes]]) -> list[tuple[Path, Path | None]]:
    """Write each file through a temporary name and one rename; keep the version it replaces until the index is
    swapped. Returns (target, backup or None)."""
    out: list[tuple[Path, Path | None]] = []
    for name, raw in files:
        target = data_dir / name
        backup = None
        tmp = data_dir / f".partial-{os.getpid()}-{name}"
        try:
            if target.exists():
                backup = data_dir / f".backup-{os.getpid()}-{name}"
                os.replace(target, backup)
            tmp.write_bytes(raw)
            with tmp.open("rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            # all or nothing: the files written so far go back to what they were, nothing half-written stays
            tmp.unlink(missing_ok=True)
            if backup is not None and backup.exists():
                os.replace(backup, target)
            _restore(data_dir, out)
            raise
        out.append((target, backup))
    return out


def _restore(data_dir: Path, backups: list[tuple[Path, Path | None]]) -> None:
    for target, backup in backups:
        if backup is not None:
            os.replace(backup, target)
        else:
            target.unlink(missing_ok=True)


def _discard(backups: list[tuple[Path, Path | None]]) -> None:
    for _target, backup in backups:
        if backup is not None:
            backup.unlink(missing_ok=True)


def _update_manifest(data_dir: Path, changed: dict[str, dict]) -> None:
    """Write these manifest entries (file name → entry), exactly as the documents were fingerprinted."""
    path = data_dir / MANIFEST_NAME
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"documents": []}
    entries = {e["file"]: e for e in data.get("documents", [])} | changed
    data["documents"] = list(entries.values())
    _write_manifest(data_dir, data)


def remove_document(settings: Settings, embedder: Embedder, doc_id: str) -> Report:
    """Take a document out: its file moves to data/.removed/ (nothing is deleted), then its passages are hidden."""
    started = time.perf_counter()
    store = backend_for(settings)
    with _locked(store):
        config = store.read_config()
        files = (config or {}).get("files", {})
        if config is None or doc_id not in files:
            known = "、".join(sorted(files)[:10]) + (f" 等 {len(files)} 个" if len(files) > 10 else "") if files else "（无）"
            raise UnknownDocumentError(f"unknown document {doc_id[:80]!r}",
                                       f"没有编号为“{_shown(doc_id)}”的文档。现有文档：{known}")
        source = settings.data_dir / files[doc_id]
        manifest_path = settings.data_dir / MANIFEST_NAME
        manifest_before = manifest_path.read_bytes() if manifest_path.exists() else None
        kept = None
        try:
            if source.exists():
                trash = settings.data_dir / REMOVED_DIR
                trash.mkdir(exist_ok=True)
                kept = trash / f"{time.strftime('%Y%m%d-%H%M%S')}-{source.name}"
                os.replace(source, kept)
                os.utime(kept)  # its age in .removed/ counts from the removal (RAG_REMOVED_KEEP_DAYS), not the upload
            _drop_manifest_entry(settings.data_dir, files[doc_id])
            base = config | {"files": {k: v for k, v in files.items() if k != doc_id}}
            store.apply_changes(base, None, {doc_id}, {})
            if settings.store not in ("", "embedded"):
                from rag.store.shared import drop_original

                drop_original(settings, doc_id)
        except OSError as exc:
            # one transaction: the file and its manifest entry go back, the index was not changed
            if kept is not None and kept.exists():
                os.replace(kept, source)
            if manifest_before is not None:
                manifest_path.write_bytes(manifest_before)
            raise CorpusError(f"cannot remove {doc_id}: {exc}",
                              "无法删除：文档库或索引目录无法写入（磁盘已满或目录只读？）；文档没有被删除，请处理后重试。") from exc
    return Report("removed", removed=[doc_id], seconds=time.perf_counter() - started)


def _drop_manifest_entry(data_dir: Path, name: str) -> None:
    path = data_dir / MANIFEST_NAME
    if not path.exists():
        return
    data = json.loads(path.read_text(encoding="utf-8"))
    kept = [e for e in data.get("documents", []) if e.get("file") != name]
    if len(kept) != len(data.get("documents", [])):
        data["documents"] = kept
        _write_manifest(data_dir, data)


def _write_manifest(data_dir: Path, data: dict) -> None:
    """Through a temporary file and one rename: a reader sees the old manifest or the new one."""
    tmp = data_dir / f".{MANIFEST_NAME}.tmp"
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")
    os.replace(tmp, data_dir / MANIFEST_NAME)


def supported_files_in(folder: Path) -> list[Path]:
    """Document files under a folder (recursively), for `rag add DIR`."""

    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUPPORTED
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


# ---------------------------------------------------------------- listing

def today_of(settings: Settings) -> dt.date:
    """Today's date, or the one set by RAG_TODAY (tests, and checking which plans will have expired)."""
    return dt.date.fromisoformat(settings.today) if settings.today else dt.date.today()


def document_row(doc: dict, passages: int, today: dt.date) -> dict:
    """One line of `rag documents`: the contract fields plus format, file and PDF page count."""
    facts = facts_from_json(doc.get("facts", {}))

    def fact(name: str, fallback: str = "") -> str:
        value = facts.get(name)
        return value.value if value is not None and not isinstance(value, list) else fallback  # type: ignore[union-attr]

    # what the manifest (or an administrator's correction) says wins over what was read from the text
    stated = str(doc.get("date", "") or "")
    date = (iso_date(stated) or stated or iso_date(fact("signed")) or iso_date(fact("published"))
            or iso_date(fact("effective")))
    period = doc.get("period", "") or fact("period")
    return {
        "doc_id": doc["doc_id"],
        "title": doc.get("title", ""),
        "issuer": doc.get("issuer") or fact("issuer"),
        "region": doc.get("region", "") or fact("region"),
        "date": date,
        "doc_number": doc.get("doc_number") or fact("doc_number"),
        "period": period,
        "status": validity(period, today),
        "passages": passages,
        "format": doc.get("format", "text"),
        "file": doc.get("file", ""),
        "pages": len(doc.get("pages", [])),
        "ocr_pages": len(doc.get("ocr_pages", [])),  # pages of a scan whose text OCR read
    }


def list_documents(index: Index, today: dt.date) -> list[dict]:
    counts = index.passage_counts()
    return [document_row(doc, counts.get(doc["doc_id"], 0), today) for doc in index.documents]
