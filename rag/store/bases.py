"""Knowledge bases: several libraries in one installation (政策法规, 内部通知 …), each with its readers and
administrators, and an index view that holds only the documents one reader may see.

The bases are defined in `knowledge_bases.json` beside the documents (or the file `RAG_KNOWLEDGE_BASES` names):

    {"knowledge_bases": [
      {"id": "policy",   "name": "政策法规", "readers": ["*"],               "admins": ["@ip-office"]},
      {"id": "internal", "name": "内部通知", "readers": ["@dept-a", "alice"], "admins": ["alice"]}
    ]}

A reader or administrator is a user name, `@group` (groups from the SSO proxy's group header or RAG_USER_GROUPS)
or `*` (everyone who may log in). A document belongs to one base (`kb` in its manifest entry, set when it is added);
a document without one belongs to the first base; a document of a base removed from the file belongs to none. Without the file there is one base, 全部文档, that everyone reads:
the installation behaves as it did before bases existed. The installation's administrators (RAG_ADMIN_USERS, or the
person at the machine when no login is configured) read and administer every base.

`ScopedIndex` is how "answers only from the bases the user may read" is kept: every route builds its engine on a
view of the loaded index restricted to those documents, so retrieval, document titles in questions, plans, the
document view and page images never see another base's documents — not by a filter each route must remember.
"""

from __future__ import annotations

import json
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.errors import CorpusError
from rag.ingest.chunking import Chunk

FILE_NAME = "knowledge_bases.json"
DEFAULT_ID = "default"
DEFAULT_NAME = "全部文档"
MAX_ID_CHARS = 40


@dataclass(frozen=True)
class KnowledgeBase:
    id: str
    name: str
    readers: tuple[str, ...] = ("*",)
    admins: tuple[str, ...] = ()

    @staticmethod
    def _names(who: tuple[str, ...], user: str | None, groups: frozenset[str]) -> bool:
        return "*" in who or (bool(user) and user in who) or any(f"@{g}" in who for g in groups)

    def read_by(self, user: str | None, groups: frozenset[str]) -> bool:
        return self._names(self.readers, user, groups) or self.administered_by(user, groups)

    def administered_by(self, user: str | None, groups: frozenset[str]) -> bool:
        return bool(user or groups) and self._names(tuple(a for a in self.admins if a != "*"), user, groups)

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name}


@dataclass(frozen=True)
class Bases:
    """The installation's knowledge bases, the first being where documents without a base belong."""

    bases: tuple[KnowledgeBase, ...]
    defined: bool  # False: no file, the one default base

    @property
    def default(self) -> KnowledgeBase:
        return self.bases[0]

    def get(self, base_id: str) -> KnowledgeBase | None:
        return next((b for b in self.bases if b.id == base_id), None)

    def of(self, document: dict) -> str:
        """The base a document (its metadata) belongs to: its own, or the first when it names none. A document whose
        base was taken out of the definition keeps that name and so belongs to no base anyone reads: deleting a base
        hides its documents, it never hands them to the first base's readers."""
        return document.get("kb") or self.default.id


def load_bases(data_dir: Path, path: Path | None = None) -> Bases:
    """The bases from `path` (RAG_KNOWLEDGE_BASES) or `data_dir/knowledge_bases.json`; one open base when neither
    exists. A file that is not a valid definition is a CorpusError with a Chinese message naming what is wrong."""
    source = path or data_dir / FILE_NAME
    if not source.is_file():
        if path is not None:
            raise CorpusError(f"{source}: no such file", f"知识库定义文件 {source} 不存在，请检查 RAG_KNOWLEDGE_BASES 设置。")
        return Bases((KnowledgeBase(DEFAULT_ID, DEFAULT_NAME),), defined=False)
    try:
        rows = json.loads(source.read_text(encoding="utf-8"))["knowledge_bases"]
        bases = tuple(KnowledgeBase(str(r["id"]).strip(), str(r.get("name") or r["id"]).strip(),
                                    tuple(str(x).strip() for x in r.get("readers", [])),
                                    tuple(str(x).strip() for x in r.get("admins", []))) for r in rows)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CorpusError(f"{source}: not a knowledge-base definition ({exc})",
                          f"知识库定义文件 {source.name} 格式有误：需要 {{\"knowledge_bases\": [{{\"id\", \"name\", "
                          "\"readers\", \"admins\"}}]}}。") from exc
    ids = [b.id for b in bases]
    bad = [i for i in ids if not i or len(i) > MAX_ID_CHARS or "/" in i]
    if not bases or bad or len(set(ids)) != len(ids):
        raise CorpusError(f"{source}: empty, bad or repeated ids {ids}",
                          f"知识库定义文件 {source.name} 有误：至少定义一个知识库，编号不能为空、重复、含“/”或超过 "
                          f"{MAX_ID_CHARS} 个字符。")
    return Bases(bases, defined=True)


def definition_path(data_dir: Path, path: Path | None = None) -> Path:
    return path or data_dir / FILE_NAME


def save_bases(data_dir: Path, bases: list[KnowledgeBase], path: Path | None = None) -> None:
    """Write the definition (atomically: a reader sees the old file or the new one)."""
    target = definition_path(data_dir, path)
    rows = [{"id": b.id, "name": b.name, "readers": list(b.readers), "admins": list(b.admins)} for b in bases]
    tmp = target.with_suffix(".tmp")
    tmp.write_text(json.dumps({"knowledge_bases": rows}, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(target)


def create_base(data_dir: Path, base: KnowledgeBase, path: Path | None = None) -> Bases:
    """Add a base to the definition (the first one created also writes the file; documents that name no base stay in
    the first base, which is then the one named "default" if it was implicit). CorpusError (Chinese) on a bad or
    taken id."""
    current = load_bases(data_dir, path)
    if not base.id or len(base.id) > MAX_ID_CHARS or "/" in base.id:
        raise CorpusError(f"bad knowledge-base id {base.id!r}",
                          f"知识库编号“{base.id[:40]}”不可用：不能为空、含“/”或超过 {MAX_ID_CHARS} 个字符。")
    if current.get(base.id) is not None and current.defined:
        raise CorpusError(f"knowledge base {base.id!r} exists", f"知识库“{base.id}”已经存在。")
    kept = list(current.bases) if current.defined else [KnowledgeBase(DEFAULT_ID, DEFAULT_NAME)]
    if base.id == DEFAULT_ID and not current.defined:
        kept = []
    save_bases(data_dir, [*kept, base], path)
    return load_bases(data_dir, path)


def delete_base(data_dir: Path, base_id: str, path: Path | None = None) -> Bases:
    """Take a base out of the definition. Its documents keep its name and so belong to no base anyone reads (they
    are hidden, never handed to another base's readers) until it is created again or they are removed."""
    current = load_bases(data_dir, path)
    if not current.defined or current.get(base_id) is None:
        raise CorpusError(f"no knowledge base {base_id!r}", f"没有名为“{base_id[:40]}”的知识库。")
    rest = [b for b in current.bases if b.id != base_id]
    if not rest:
        raise CorpusError("the last knowledge base", "不能删除最后一个知识库。")
    save_bases(data_dir, rest, path)
    return load_bases(data_dir, path)


@dataclass(frozen=True)
class Access:
    """What one user may do: the bases they read and the bases they administer (ids, in the definition's order)."""

    user: str | None
    groups: frozenset[str]
    reads: tuple[str, ...]
    administers: tuple[str, ...]


def access_of(bases: Bases, user: str | None, groups: frozenset[str], installation_admin: bool) -> Access:
    if installation_admin:
        every = tuple(b.id for b in bases.bases)
        return Access(user, groups, every, every)
    return Access(user, groups, tuple(b.id for b in bases.bases if b.read_by(user, groups)),
                  tuple(b.id for b in bases.bases if b.administered_by(user, groups)))


def documents_in(bases: Bases, documents: list[dict], base_ids: tuple[str, ...] | list[str]) -> frozenset[str]:
    """The ids of the documents that belong to these bases."""
    wanted = set(base_ids)
    return frozenset(d["doc_id"] for d in documents if bases.of(d) in wanted)


class _ScopedQuery:
    """A query whose candidates come only from the allowed documents."""

    def __init__(self, query, allowed: frozenset[str]):
        self._query = query
        self._allowed = allowed
        self.concurrent = getattr(query, "concurrent", False)

    def _scope(self, doc_ids: AbstractSet[str] | None) -> frozenset[str]:
        return self._allowed if doc_ids is None else frozenset(doc_ids) & self._allowed

    def bm25_top(self, limit: int, doc_ids: AbstractSet[str] | None = None) -> np.ndarray:
        scope = self._scope(doc_ids)
        return self._query.bm25_top(limit, scope) if scope else np.zeros(0, np.int64)

    def dense_top(self, limit: int, doc_ids: AbstractSet[str] | None = None) -> np.ndarray:
        scope = self._scope(doc_ids)
        return self._query.dense_top(limit, scope) if scope else np.zeros(0, np.int64)

    def _kept(self, ids: np.ndarray) -> np.ndarray:
        docs = self._query.doc_of(ids)
        return np.asarray([i for i, d in zip(ids, docs, strict=True) if d in self._allowed], dtype=np.int64)

    def bm25_of(self, ids: np.ndarray) -> np.ndarray:
        return self._query.bm25_of(ids)

    def dense_of(self, ids: np.ndarray) -> np.ndarray:
        return self._query.dense_of(ids)

    def doc_of(self, ids: np.ndarray) -> list[str]:
        return self._query.doc_of(ids)

    def chunks(self, ids: np.ndarray) -> list[Chunk]:
        if len(ids) and len(self._kept(ids)) != len(ids):
            raise PermissionError("a passage outside the reader's knowledge bases was asked for")
        return self._query.chunks(ids)


class ScopedIndex:
    """A loaded index (rag.store.base.Index) as one reader sees it: only the documents in `allowed`."""

    def __init__(self, index, allowed: frozenset[str]):
        self._index = index
        self.allowed = allowed
        self.config = index.config
        self.documents = [d for d in index.documents if d["doc_id"] in allowed]

    def __len__(self) -> int:
        return sum(self.passage_counts().values())

    def passage_counts(self) -> dict[str, int]:
        return {k: v for k, v in self._index.passage_counts().items() if k in self.allowed}

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        return self._index.chunks_of(doc_id) if doc_id in self.allowed else []

    @property
    def chunks(self) -> list[Chunk]:
        return [c for c in self._index.chunks if c.doc_id in self.allowed]

    def text_of(self, doc_id: str) -> str:
        return self._index.text_of(doc_id) if doc_id in self.allowed else ""

    @property
    def exact_dense(self) -> bool:
        return False  # the reader's view is searched through its query, never over every vector

    def exact_dense_top(self, vector: np.ndarray, limit: int) -> np.ndarray:
        raise NotImplementedError("a reader's view is searched through query()")

    def query(self, tokens: list[str], vector: np.ndarray | None) -> _ScopedQuery:
        return _ScopedQuery(self._index.query(tokens, vector), self.allowed)
