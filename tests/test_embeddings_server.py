"""Embeddings from an OpenAI-compatible server: batched, retried, recorded in the index, clear when the server is gone.

The server here is a small local HTTP endpoint speaking the /v1/embeddings protocol (as TEI, vLLM or Ollama do),
answering with the fake embedder's vectors; it can be told to fail its next requests."""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from rag.errors import IndexMismatchError, ModelError
from rag.models.embedders import FakeEmbedder, OpenAIEmbedder, make_embedder
from rag.search.retrieval import Retriever
from rag.store.library import ensure_index


class EmbeddingsServer:
    def __init__(self, dim: int = 64):
        self.fake = FakeEmbedder(dim)
        self.batches: list[int] = []
        self.fail_next = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/v1/embeddings":
                    self.send_error(404)
                    return
                if server.fail_next:
                    server.fail_next -= 1
                    self.send_response(503)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "overloaded"}}')
                    return
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                server.batches.append(len(texts))
                vectors = server.fake.embed_documents(texts)
                as_base64 = body.get("encoding_format") == "base64"
                data = [{"object": "embedding", "index": i,
                         "embedding": base64.b64encode(v.astype(np.float32).tobytes()).decode() if as_base64 else v.tolist()}
                        for i, v in enumerate(vectors)]
                out = json.dumps({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": 0, "total_tokens": 0}}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture
def server():
    srv = EmbeddingsServer()
    yield srv
    srv.close()


def test_passages_are_sent_in_batches_and_the_vectors_are_the_servers(server):
    embedder = OpenAIEmbedder("bge-m3", server.url, batch_size=4)
    texts = [f"第{i}条 知识产权质押融资" for i in range(10)]
    vectors = embedder.embed_documents(texts)
    assert server.batches == [4, 4, 2]
    assert vectors.shape == (10, 64) and np.allclose(vectors, server.fake.embed_documents(texts), atol=1e-6)
    assert embedder.dim == 64 and embedder.name == "openai:bge-m3"


def test_a_failing_request_is_retried(server):
    server.fail_next = 2
    embedder = OpenAIEmbedder("bge-m3", server.url, batch_size=8, max_retries=3)
    assert embedder.embed_documents(["专利转化", "商标品牌"]).shape == (2, 64)
    assert server.batches == [2]  # the two 503s were retried, then answered


def test_a_server_that_keeps_failing_or_is_gone_gives_a_clear_message(server):
    server.fail_next = 10
    with pytest.raises(ModelError) as info:
        OpenAIEmbedder("bge-m3", server.url, max_retries=1).embed_documents(["专利"])
    assert "向量服务" in info.value.user_message and server.url in info.value.user_message
    with pytest.raises(ModelError):
        OpenAIEmbedder("bge-m3", "http://127.0.0.1:9/v1", max_retries=0, timeout_s=2).embed_query("专利")


def test_the_index_records_the_servers_model_and_refuses_another(server, real_settings):
    settings = real_settings.replace(embedder="openai:bge-m3", embedder_base_url=server.url, embedder_batch=16)
    embedder = make_embedder(settings.embedder, settings)
    index, _ = ensure_index(settings, embedder)
    assert index.config["embedder"] == "openai:bge-m3" and index.config["dim"] == 64
    assert max(server.batches) <= 16
    hits = Retriever(index, embedder, settings).search("湖南专利转化目标")
    assert hits
    from rag.store.embedded import load_index

    with pytest.raises(IndexMismatchError) as info:
        load_index(settings.index_dir, OpenAIEmbedder("text-embedding-3-small", server.url, dim=64))
    assert "openai:bge-m3" in info.value.user_message and "openai:text-embedding-3-small" in info.value.user_message
