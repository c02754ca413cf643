"""What staff asked and what they thought of the answers: the questions log and the votes, beside the data
(`Settings.feedback_file`, `Settings.questions_file`), and the administrator's view of them.

Both are append-only JSONL (one lock per file) — or, when the index is on PostgreSQL, rows of the database every
process shares (rag/store/shared.py), so that the review shows the votes cast through any process. A vote carries the answer's id: the latest vote on an answer is the
one that counts (a double click, or a changed mind, never counts twice).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from rag.errors import RagError
from rag.settings import Settings
from rag.store.shared import PgLog, shared


class JsonLog:
    """Append-only JSONL; one lock per file (shared by the API and the UI) so records never interleave."""

    _locks: dict[Path, threading.Lock] = {}
    _guard = threading.Lock()

    def __init__(self, path: Path):
        self.path = Path(path)
        with JsonLog._guard:
            self._lock = JsonLog._locks.setdefault(self.path.resolve(), threading.Lock())

    def append(self, record: dict) -> None:
        """One whole line or nothing (issue 19 F9): a line a full disk tore is cut back off, and a torn line left by an
        earlier crash is closed first, so that it never swallows the record written after it."""
        line = json.dumps(record | {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}, ensure_ascii=False) + "\n"
        data = line.encode("utf-8")
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":
                    data = b"\n" + data
                written = 0
                try:
                    while written < len(data):
                        written += os.write(fd, data[written:])
                except OSError:
                    os.ftruncate(fd, size)  # what the disk took of this line goes again: no torn record stays
                    raise
            finally:
                os.close(fd)

    def read(self) -> list[dict]:
        """Every record; a torn or foreign line is skipped, never fatal."""
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                out.append(record)
        return out


QUESTION_FIELDS = ("answer_id", "question", "rewritten_question", "answer", "refused", "refusal_reason", "backend")


def questions_log(settings: Settings):
    """Where answered questions are logged: the JSONL file, or the shared database."""
    return PgLog(settings, "question") if shared(settings) else JsonLog(settings.questions_file)


def votes_log(settings: Settings):
    """Where 👍/👎 votes go: the JSONL file, or the shared database."""
    return PgLog(settings, "vote") if shared(settings) else JsonLog(settings.feedback_file)


def log_question(log, answer: dict) -> None:
    """One answered question (an Answer as a dict) in the questions log (a log, or a JSONL file's path); a disk or
    database fault never costs the answer."""
    try:
        (log if hasattr(log, "append") else JsonLog(log)).append({k: answer.get(k) for k in QUESTION_FIELDS})
    except (OSError, RagError):
        pass


def latest_votes(votes: list[dict]) -> list[dict]:
    """One vote per answer: the last one given (records without an answer id count each)."""
    by_answer: dict[str, dict] = {}
    for n, vote in enumerate(votes):
        by_answer[str(vote.get("answer_id") or f"#{n}")] = vote
    return list(by_answer.values())


def review_rows(questions: list[dict], votes: list[dict], since: str = "", only: str = "") -> list[dict]:
    """Questions asked with their outcome and the vote they got, newest first; `only`: 'refused' or 'down'."""
    vote_of = {v.get("answer_id"): v for v in latest_votes(votes) if v.get("answer_id")}
    rows = []
    for q in questions:
        if since and str(q.get("time", "")) < since:
            continue
        vote = vote_of.get(q.get("answer_id"), {})
        row = {"time": q.get("time", ""), "question": q.get("question", ""), "refused": bool(q.get("refused")),
               "reason": q.get("refusal_reason", ""), "vote": vote.get("vote", ""), "comment": vote.get("comment", ""),
               "answer": q.get("answer", ""), "answer_id": q.get("answer_id", "")}
        if only == "refused" and not row["refused"]:
            continue
        if only == "down" and row["vote"] != "down":
            continue
        rows.append(row)
    return sorted(rows, key=lambda r: r["time"], reverse=True)


def as_dataset(rows: list[dict]) -> str:
    """Rows as an evaluation dataset in the shared JSONL shape: key points and evidence left for the evaluator to
    fill; a refused question is marked unanswerable until someone says otherwise."""
    lines = []
    for n, row in enumerate(rows, 1):
        lines.append(json.dumps({
            "id": f"fb{n:04d}", "question": row["question"], "key_points": [], "evidence": [],
            "answerable": not row["refused"], "kind": "refused" if row["refused"] else ("disliked" if row["vote"] == "down"
                                                                                      else "asked"),
            "answer_given": row["answer"], "comment": row["comment"], "asked_at": row["time"],
        }, ensure_ascii=False))
    return "\n".join(lines) + ("\n" if lines else "")
