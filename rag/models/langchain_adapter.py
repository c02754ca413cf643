"""LangChain at the edge: our retriever as a `BaseRetriever`, passages as `Document`s."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever


class PolicyRetriever(BaseRetriever):
    """Hybrid retrieval over the policy index, for LangChain chains and agents."""

    engine: Any
    k: int = 5
    filters: dict | None = None

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        results = self.engine.retriever.search(query, k=self.k, filters=self.filters)
        return [Document(page_content=r.chunk.text, metadata={k: v for k, v in r.to_context().items() if k != "text"})
                for r in results]
