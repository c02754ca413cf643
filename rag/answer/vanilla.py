"""The vanilla LangChain recipe, end to end, as the baseline every report shows beside ours.

RecursiveCharacterTextSplitter 500/50 chunks (no headers), jieba BM25 top-5, the configured model, a plain RAG prompt
(`prompts/vanilla.txt`), the model's text as the answer. Nothing is checked: that is the point of the comparison.
A follow-up is sent as the previous user turn plus the question (the recipe has no rewriting).
"""

from __future__ import annotations

import time

from rag.answer.grounding import parse_markers, says_cannot_answer
from rag.answer.result import Answer, Citation
from rag.engine import Engine
from rag.models.prompts import render

# the settings of the recipe's index (an engine built with these is what `vanilla_answer` searches)
VANILLA_SETTINGS = {"chunker": "vanilla", "contextual_headers": False, "retrieval_mode": "bm25"}


def vanilla_answer(question: str, history: list | None, engine: Engine) -> Answer:
    """One answer by the vanilla recipe; `engine` must be built with VANILLA_SETTINGS and have a model."""
    started = time.perf_counter()
    settings = engine.settings
    previous = [t["content"] for t in (history or []) if isinstance(t, dict) and t.get("role") == "user"]
    search = (previous[-1] + " " + question) if previous else question
    passages = engine.retriever.search(search[: settings.max_question_chars], k=5)
    numbered = [{"number": i + 1, "text": p.chunk.text} for i, p in enumerate(passages)]
    prompt = [{"role": "user", "content": render(settings.prompts_dir, "vanilla", passages=numbered, question=question)}]
    if engine.llm is None:
        raise ValueError("the vanilla recipe needs a model (RAG_LLM_BACKEND local or openai)")
    text = engine.llm.generate(prompt, max_tokens=settings.llm_max_tokens).strip()
    citations = []
    for n in sorted(set(parse_markers(text)[1])):
        if 1 <= n <= len(passages):
            c = passages[n - 1].chunk
            citations.append(Citation(n, c.doc_id, c.title, c.section, c.text, chunk_id=c.chunk_id))
    result = Answer(question=question, answer=text, refused=says_cannot_answer(text), citations=citations,
                    contexts=passages, prompt=prompt, raw_answer=text, backend=f"vanilla:{settings.llm_backend}")
    result.timings["total_ms"] = (time.perf_counter() - started) * 1000
    return result
