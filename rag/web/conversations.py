"""Each person's conversations, kept on the server beside the data (`Settings.conversations_dir`), so they survive a
reload and can be listed, renamed and deleted.

An owner is a logged-in user name or, with no login, a random id the browser keeps in its own storage. Each owner has
one JSON file named by a hash of the owner (no user name reaches the file system); writes are atomic (a temporary file,
then a rename) under one lock per file, so two tabs never tear it. Nothing here trusts what it reads: a foreign,
torn or oversized file is read as far as it is sane, never fatal.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import os
import re
import secrets
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

MAX_CONVERSATIONS = 200  # per owner; past it the oldest untouched conversation makes room (the list says so)
MAX_MESSAGES = 20_000  # per conversation on disk (10,000 turns); past it the oldest messages make room
SHOWN_MESSAGES = 200  # what a reload puts back into the chat; the rest stays stored
MAX_TITLE = 40
MAX_CONTENT = 40_000  # characters of one stored message


@dataclass
class Conversation:
    id: str
    title: str
    updated: float
    messages: list[dict] = field(default_factory=list)

    def label(self) -> str:
        return f"{self.title}（{time.strftime('%m-%d %H:%M', time.localtime(self.updated))}）"


class ConversationError(Exception):
    """A request about a conversation that cannot be met; `user_message` is what the person reads."""

    def __init__(self, user_message: str):
        super().__init__(user_message)
        self.user_message = user_message


def new_owner_id() -> str:
    """The id a browser keeps when nobody is logged in (unguessable: it is the key to that browser's conversations)."""
    return "browser:" + secrets.token_urlsafe(18)


def browser_secret(directory: Path) -> str:
    """The key the browser's stored id is sealed with, kept beside the conversations so that it survives a restart
    (a new key each start would orphan every browser's conversations); '' falls back to a per-start key."""
    path = Path(directory) / ".browser-secret"
    try:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        pass
    key = secrets.token_urlsafe(24)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key)
    except FileExistsError:
        return path.read_text(encoding="ascii").strip()
    except OSError:
        return ""
    return key


def clean_title(text: str) -> str:
    """A title shown as text: one line, no control characters, at most MAX_TITLE characters."""
    text = re.sub(r"[\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e]", " ", str(text or ""))
    text = re.sub(r"\s+", " ", text).strip()
    return text[:MAX_TITLE].rstrip() or "未命名对话"


class ConversationStore:
    _locks: dict[Path, threading.Lock] = {}
    _guard = threading.Lock()

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    # -- reading ---------------------------------------------------------------------------------------------------
    def list(self, owner: str) -> "builtins.list[Conversation]":
        """The owner's conversations, the latest first."""
        return sorted(self._read(owner).values(), key=lambda c: -c.updated)

    def get(self, owner: str, conversation_id: str) -> Conversation:
        found = self._read(owner).get(str(conversation_id or ""))
        if found is None:
            raise ConversationError("这个对话不存在，或不属于当前用户。")
        return found

    # -- writing ---------------------------------------------------------------------------------------------------
    def add_turn(self, owner: str, conversation_id: str | None, messages: builtins.list[dict], title: str = "") -> Conversation:
        """Append a turn's messages to the conversation (a new one, titled by its first question, when
        `conversation_id` is None); earlier messages stay as stored, shown or not. Returns the conversation."""
        with self._lock(owner):
            conversations = self._read(owner)
            if conversation_id and conversation_id not in conversations:
                raise ConversationError("这个对话不存在，或不属于当前用户。")
            if conversation_id:
                conversation = conversations[conversation_id]
            else:
                conversation = Conversation(id=secrets.token_hex(8), title=clean_title(title), updated=time.time())
                conversations[conversation.id] = conversation
            added = [_clean_message(m) for m in messages if isinstance(m, dict)]
            conversation.messages = (conversation.messages + added)[-MAX_MESSAGES:]
            conversation.updated = time.time()
            while len(conversations) > MAX_CONVERSATIONS:
                oldest = min(conversations.values(), key=lambda c: c.updated)
                del conversations[oldest.id]
            self._write(owner, conversations)
            return conversation

    def rename(self, owner: str, conversation_id: str, title: str) -> Conversation:
        with self._lock(owner):
            conversations = self._read(owner)
            if conversation_id not in conversations:
                raise ConversationError("这个对话不存在，或不属于当前用户。")
            conversations[conversation_id].title = clean_title(title)
            self._write(owner, conversations)
            return conversations[conversation_id]

    def delete(self, owner: str, conversation_id: str) -> None:
        with self._lock(owner):
            conversations = self._read(owner)
            if conversation_id not in conversations:
                raise ConversationError("这个对话不存在，或不属于当前用户。")
            del conversations[conversation_id]
            self._write(owner, conversations)

    # -- files -----------------------------------------------------------------------------------------------------
    def _path(self, owner: str) -> Path:
        if not owner:
            raise ConversationError("无法识别当前用户，对话不会被保存。")
        return self.directory / (hashlib.sha256(owner.encode("utf-8")).hexdigest()[:32] + ".json")

    def _lock(self, owner: str) -> threading.Lock:
        with ConversationStore._guard:
            return ConversationStore._locks.setdefault(self._path(owner).resolve(), threading.Lock())

    def _read(self, owner: str) -> dict[str, Conversation]:
        path = self._path(owner)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return _parsed(data)

    def _write(self, owner: str, conversations: dict[str, Conversation]) -> None:
        path = self._path(owner)
        payload = _payload(conversations)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(payload, fh, ensure_ascii=False)
            os.replace(tmp, path)
        except OSError as exc:
            raise ConversationError("对话没有保存成功（存储不可写），本次对话仍在页面上。") from exc


def _payload(conversations: dict[str, Conversation]) -> dict:
    return {"version": 1, "conversations": [
        {"id": c.id, "title": c.title, "updated": c.updated, "messages": c.messages} for c in conversations.values()]}


def _parsed(data) -> dict[str, Conversation]:
    """An owner's stored conversations, whatever damage the stored form has (bad items are left out)."""
    out: dict[str, Conversation] = {}
    items = data.get("conversations") if isinstance(data, dict) else None
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
            continue
        messages = item.get("messages")
        messages = [_clean_message(m) for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
        try:
            updated = float(item.get("updated") or 0)
        except (TypeError, ValueError):
            updated = 0.0
        out[item["id"][:64]] = Conversation(item["id"][:64], clean_title(item.get("title", "")), updated,
                                            messages[-MAX_MESSAGES:])
    return out


class SharedConversationStore(ConversationStore):
    """The same conversations, kept in the shared database (RAG_STORE on PostgreSQL: rag/store/shared.py) so that a
    person's conversations follow them to whichever process answers: one row per owner, changed under a row lock."""

    def __init__(self, settings):
        super().__init__(settings.conversations_dir)
        self.settings = settings
        self._held = threading.local()

    @contextlib.contextmanager
    def _lock(self, owner: str):  # type: ignore[override]  # a transaction holding the owner's row, not a thread lock
        from rag.store.shared import connection

        key = self._path(owner).stem
        with connection(self.settings) as conn:
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (key,))
            self._held.conn = conn
            try:
                yield
                conn.commit()
            except BaseException:
                conn.rollback()
                raise
            finally:
                self._held.conn = None

    def _read(self, owner: str) -> dict[str, Conversation]:
        from rag.store.shared import connection

        key = self._path(owner).stem
        held = getattr(self._held, "conn", None)
        if held is not None:
            row = held.execute("SELECT payload FROM rag_conversations WHERE owner = %s", (key,)).fetchone()
        else:
            with connection(self.settings) as conn:
                row = conn.execute("SELECT payload FROM rag_conversations WHERE owner = %s", (key,)).fetchone()
                conn.rollback()
        return _parsed(row[0] if row else None)

    def _write(self, owner: str, conversations: dict[str, Conversation]) -> None:
        key = self._path(owner).stem
        payload = json.dumps(_payload(conversations), ensure_ascii=False)
        self._held.conn.execute("INSERT INTO rag_conversations (owner, payload) VALUES (%s, %s::jsonb) ON CONFLICT (owner) "
                                "DO UPDATE SET payload = EXCLUDED.payload", (key, payload))


def conversation_store(settings) -> ConversationStore:
    """Files beside the votes, or the shared database when the index is on PostgreSQL."""
    if settings.store in ("", "embedded"):
        return ConversationStore(settings.conversations_dir)
    return SharedConversationStore(settings)


def shared_browser_secret(settings) -> str:
    """The key browsers' ids are sealed with: beside the conversations, or in the shared database."""
    if settings.store in ("", "embedded"):
        return browser_secret(settings.conversations_dir)
    from rag.errors import RagError
    from rag.store.shared import secret

    try:
        return secret(settings, "browser", lambda: secrets.token_urlsafe(24))
    except RagError:  # the database is down at start-up: a per-start key (the server starts and says why)
        return ""


def _clean_message(message: dict) -> dict:
    role = message.get("role") if message.get("role") in ("user", "assistant") else "assistant"
    content = message.get("content")
    if not isinstance(content, str):
        content = json.dumps(content, ensure_ascii=False) if content is not None else ""
    out = {"role": role, "content": content[:MAX_CONTENT]}
    metadata = message.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("id"), str):
        out["metadata"] = {"id": metadata["id"][:64]}
    return out


def shown(conversation: Conversation) -> tuple[list[dict], int]:
    """The messages a reload puts back into the chat (the latest SHOWN_MESSAGES, starting at a question) and how many
    earlier ones stay stored but unshown."""
    messages = conversation.messages[-SHOWN_MESSAGES:]
    while messages and messages[0]["role"] != "user":
        messages = messages[1:]
    return messages, len(conversation.messages) - len(messages)
