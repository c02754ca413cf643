import sys
import types

import pytest

from rag.answer.pipeline import answer
from rag.errors import LLMUnavailableError, ModelError
from rag.evaluation.loadcheck import free_port
from rag.models.llms import LOCAL_MODELS, LocalLlama, OpenAICompatible, ensure_local_model

from .conftest import engine_with_llm


def test_unreachable_openai_endpoint_is_a_clear_error_and_falls_back(real_engine):
    port = free_port()  # nothing listens there
    settings = real_engine.settings.replace(llm_backend="openai", llm_base_url=f"http://127.0.0.1:{port}/v1", llm_timeout_s=3)
    llm = OpenAICompatible(settings)
    with pytest.raises(LLMUnavailableError) as info:
        llm.generate([{"role": "user", "content": "你好"}])
    assert str(port) in info.value.user_message
    engine = engine_with_llm(real_engine, llm, llm_backend="openai", llm_base_url=settings.llm_base_url)
    result = answer("湖南要做强哪些地理标志品牌？", engine=engine)
    assert "浏阳花炮" in result.answer and result.backend == "extractive" and "unavailable" in result.notes[0]


def test_model_parts_failing_the_checksum_are_rejected(real_settings, tmp_path, monkeypatch):
    parts = []
    for i in range(2):
        path = tmp_path / f"part{i}.bin"
        path.write_bytes(b"not a model" * 100)
        module = types.ModuleType(f"fake_model_part{i}")
        module.get_part_path = lambda p=path: str(p)
        monkeypatch.setitem(sys.modules, module.__name__, module)
        parts.append(module.__name__)
    monkeypatch.setitem(LOCAL_MODELS, "broken", {"parts": parts, "sha256_prefix": "00000000", "file": "broken.gguf"})
    settings = real_settings.replace(llm_model="broken", model_cache_dir=tmp_path / "cache")
    with pytest.raises(ModelError) as info:
        ensure_local_model(settings)
    assert "校验失败" in info.value.user_message
    assert not (tmp_path / "cache" / "broken.gguf").exists()


def test_missing_part_package_and_missing_file(real_settings, tmp_path, monkeypatch):
    monkeypatch.setitem(LOCAL_MODELS, "absent", {"parts": ["no_such_part_pkg"], "sha256_prefix": "0", "file": "a.gguf"})
    with pytest.raises(ModelError) as info:
        ensure_local_model(real_settings.replace(llm_model="absent", model_cache_dir=tmp_path))
    assert "make setup" in info.value.user_message
    with pytest.raises(ModelError):
        ensure_local_model(real_settings.replace(llm_model=str(tmp_path / "nope.gguf")))


def test_a_model_that_cannot_load_falls_back_to_extractive(real_engine, tmp_path):
    pytest.importorskip("llama_cpp")
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF but not really" * 10)
    settings = real_engine.settings.replace(llm_backend="local", llm_model=str(bogus))
    llm = LocalLlama(settings)
    with pytest.raises(ModelError):
        llm.load()
    engine = engine_with_llm(real_engine, llm, llm_backend="local", llm_model=str(bogus))
    result = answer("沈阳开展知识产权证券化工作的牵头单位是谁？", engine=engine)
    assert "浑南区政府" in result.answer and result.backend == "extractive"


def test_registered_local_models():
    assert LOCAL_MODELS["qwen2.5-coder-1.5b"]["sha256_prefix"] == "cc324af0"
    assert len(LOCAL_MODELS["qwen2.5-coder-1.5b"]["parts"]) == 22
    assert LOCAL_MODELS["qwen2.5-coder-0.5b"]["sha256_prefix"] == "1d961463"


def test_a_hanging_endpoint_costs_one_first_token_timeout_then_the_breaker_answers_at_once(real_engine, tmp_path):
    """An endpoint that accepts connections and never replies."""
    import socket
    import threading
    import time

    from fastapi.testclient import TestClient

    from rag.answer.pipeline import answer
    from rag.engine import Engine
    from rag.web.api import create_api

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    held = []
    stop = threading.Event()

    def accept_and_hang():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                continue

    threading.Thread(target=accept_and_hang, daemon=True).start()
    try:
        port = listener.getsockname()[1]
        settings = real_engine.settings.replace(llm_backend="openai", llm_base_url=f"http://127.0.0.1:{port}/v1",
                                                llm_first_token_timeout_s=1.0, llm_breaker_s=60,
                                                feedback_path=tmp_path / "f.jsonl")
        engine = Engine(settings, embedder=real_engine.embedder, index=real_engine.index)
        question = "乌海有效注册商标总数要突破多少件？"
        started = time.perf_counter()
        first = answer(question, engine=engine)
        assert time.perf_counter() - started < 5 and "4500件" in first.answer and first.backend == "extractive"
        started = time.perf_counter()
        second = answer(question, engine=engine)
        assert time.perf_counter() - started < 0.5 and "4500件" in second.answer  # the breaker is open: no waiting
        health = TestClient(create_api(settings, engine)).get("/healthz").json()
        assert health["llm"]["state"] == "open" and health["status"] == "degraded"
    finally:
        stop.set()
        for conn in held:
            conn.close()
        listener.close()
