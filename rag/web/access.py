"""Which knowledge bases a request may read and administer, and the engine it answers from.

Every route that reads documents (ask, stream, search, the document list and view, page images, the OpenAI and MCP
routes, the Gradio chat) builds its engine with `reader_engine`: a view of the index holding only the documents of
the bases the user reads (rag/store/bases.py). A document of another base is then not found — the same message as a
document that does not exist, so a guessed id tells nothing. Writing (upload, delete, corrections) checks
`administers`.
"""

from __future__ import annotations

import contextvars
import threading
from pathlib import Path

from rag.engine import Engine
from rag.errors import RagError
from rag.settings import Settings
from rag.store.bases import Access, Bases, access_of, documents_in, load_bases
from rag.web.auth import check_user, from_trusted_proxy, is_admin


class NoKnowledgeBase(RagError):
    """The user may read no knowledge base, or asked for one they may not read (or that does not exist)."""

    status = 403


class Definitions:
    """The installation's knowledge bases, read again when their file changes (an administrator edits it)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._path = Path(settings.knowledge_bases) if settings.knowledge_bases else None
        self._lock = threading.Lock()
        self._seen: tuple[float, Bases] | None = None

    def current(self) -> Bases:
        source = self._path or self.settings.data_dir / "knowledge_bases.json"
        try:
            stamp = source.stat().st_mtime
        except OSError:
            stamp = -1.0
        with self._lock:
            if self._seen is None or self._seen[0] != stamp:
                self._seen = (stamp, load_bases(self.settings.data_dir, self._path))
            return self._seen[1]


def groups_of(request, user: str | None, settings: Settings) -> frozenset[str]:
    """The user's groups: the SSO proxy's group header (comma or | separated; believed from a trusted proxy only),
    and RAG_USER_GROUPS for users who log in here ("alice:dept-a|dept-b,bob:dept-b")."""
    groups: set[str] = set()
    if settings.trusted_groups_header and request is not None and from_trusted_proxy(request, settings):
        raw = request.headers.get(settings.trusted_groups_header, "")
        groups.update(g.strip() for g in raw.replace("|", ",").split(",") if g.strip())
    if user:
        for item in filter(None, (x.strip() for x in settings.user_groups.split(","))):
            name, _, listed = item.partition(":")
            if name.strip() == user:
                groups.update(g.strip() for g in listed.split("|") if g.strip())
    return frozenset(groups)


def access_for(request, settings: Settings, definitions: Definitions, user: str | None = None) -> Access:
    """The request's access. `user`: already known (Gradio's login); else read from the request."""
    if user is None:
        user = check_user(request, settings) if request is not None else None
    admin = is_admin(user, settings, request) if request is not None else bool(user) and is_admin(user, settings)
    return access_of(definitions.current(), user, groups_of(request, user, settings), admin)


# The access of the request being served, for code called without the request (the MCP tools).
current_access: contextvars.ContextVar[Access | None] = contextvars.ContextVar("current_access", default=None)


def reader_engine(engine: Engine, definitions: Definitions, access: Access | None, base: str | None = None) -> Engine:
    """The engine this reader answers from: pinned, holding only the documents of the bases they read (of `base`
    only, when one is chosen). NoKnowledgeBase (Chinese) when they read none, or not the one chosen."""
    bases = definitions.current()
    if not bases.defined and not base:
        return engine.pinned()  # one base everyone reads: the whole library, as before bases existed
    reads = access.reads if access is not None else ()
    if base:
        if base not in reads:
            raise NoKnowledgeBase(f"knowledge base {base[:40]!r} not readable",
                                  f"没有名为“{base[:40]}”的知识库，或您没有查阅它的权限。")
        reads = (base,)
    if not reads:
        raise NoKnowledgeBase("no readable knowledge base", "您还没有可以查阅的知识库，请联系管理员开通权限。")
    if not bases.defined:
        return engine.pinned()
    view = engine.pinned()
    return view.scoped(documents_in(bases, view.index.documents, reads))


def readable_bases(definitions: Definitions, access: Access | None) -> list[dict]:
    """The bases this reader may choose from: id and name, in the definition's order."""
    bases = definitions.current()
    reads = set(access.reads if access is not None else ())
    return [b.to_dict() for b in bases.bases if b.id in reads]


def may_administer(definitions: Definitions, access: Access | None, base: str) -> bool:
    return access is not None and base in access.administers
