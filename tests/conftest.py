"""Shared fixtures: a small corpus copied to a temp dir, settings on the fake embedder, engines with fakes."""

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from rag.engine import Engine  # noqa: E402
from rag.models.embedders import FakeEmbedder  # noqa: E402
from rag.models.llms import FakeLLM  # noqa: E402
from rag.settings import PROJECT_ROOT, Settings  # noqa: E402
from rag.store.library import ensure_index  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
DATA = PROJECT_ROOT / "data"


@pytest.fixture
def fixture_corpus(tmp_path: Path) -> Path:
    """The small fixture documents (inline headings, 第X条, GB18030, no headings, a binary file)."""
    target = tmp_path / "data"
    shutil.copytree(FIXTURES, target)
    return target


@pytest.fixture
def real_corpus(tmp_path: Path) -> Path:
    """A copy of the five real documents and their manifest."""
    target = tmp_path / "data"
    shutil.copytree(DATA, target)
    return target


def make_settings(data_dir: Path, index_dir: Path, **changes) -> Settings:
    # votes and the questions log go beside the index, never into a data folder a test reads from (data/ itself)
    changes.setdefault("feedback_path", Path(index_dir).parent / "feedback.jsonl")
    return Settings.load({"data_dir": data_dir, "index_dir": index_dir, "embedder": "fake", "llm_backend": "extractive",
                          **changes}, env={})


@pytest.fixture
def real_settings(real_corpus: Path, tmp_path: Path) -> Settings:
    return make_settings(real_corpus, tmp_path / "index")


@pytest.fixture(scope="session")
def real_engine(tmp_path_factory) -> Engine:
    """The five real documents indexed with the fake embedder (built once per session)."""
    tmp = tmp_path_factory.mktemp("real")
    settings = make_settings(DATA, tmp / "index")
    embedder = FakeEmbedder()
    index, _ = ensure_index(settings, embedder)
    engine = Engine(settings, embedder=embedder, index=index)
    return engine


def library_of(tmp_path: Path, documents: dict[str, str]) -> Engine:
    """An engine (fake embedder, extractive) over a library of these documents: file name → text."""
    data = tmp_path / "data"
    data.mkdir()
    for name, text in documents.items():
        (data / name).write_text(text, encoding="utf-8")
    settings = make_settings(data, tmp_path / "index")
    index, _ = ensure_index(settings, FakeEmbedder())
    return Engine(settings, embedder=FakeEmbedder(), index=index)


def engine_with_llm(engine: Engine, llm: FakeLLM, **changes) -> Engine:
    """The same index and embedder, another backend."""
    settings = engine.settings.replace(llm_backend=changes.pop("llm_backend", "fake"), **changes)
    other = Engine(settings, embedder=engine.embedder, llm=llm, index=engine.index)
    return other


def count_searches(engine: Engine, monkeypatch) -> list:
    """The filters of every retriever search the engine makes from now on (a list that grows as it searches)."""
    calls: list = []
    search = engine.retriever.search

    def counted(*args, **kwargs):
        calls.append(kwargs.get("filters"))
        return search(*args, **kwargs)

    monkeypatch.setattr(engine.retriever, "search", counted)
    return calls


@contextlib.contextmanager
def running(app, port: int, **options):
    """The app under uvicorn in a thread, until the block ends; `options` as uvicorn.Config takes them (e.g. exactly
    what `rag serve` passes: ui.server_options)."""
    import uvicorn

    options = {"host": "127.0.0.1", "log_level": "warning"} | options | {"port": port}
    server = uvicorn.Server(uvicorn.Config(app, **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(100):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
