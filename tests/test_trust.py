"""Whom the server trusts, black-box against uvicorn run exactly as `rag serve` runs it (ui.server_options): the
client address is the socket's peer, and forwarding headers count only from a configured proxy (issue 19, F1/F2/F7)."""

import contextlib
import shutil

import httpx
import pytest

from rag.engine import Engine
from rag.evaluation.loadcheck import free_port
from rag.models.embedders import FakeEmbedder
from rag.store.library import ensure_index
from rag.web.api import create_api
from tests.conftest import DATA, make_settings, running
from ui import server_options


@contextlib.contextmanager
def serving(tmp_path, **changes):
    data = tmp_path / "data"
    if not data.exists():
        shutil.copytree(DATA, data)
    port = free_port()
    settings = make_settings(data, tmp_path / "index", port=port, host="127.0.0.1", **changes)
    embedder = FakeEmbedder()
    ensure_index(settings, embedder)
    app = create_api(settings, Engine(settings, embedder=embedder))
    with running(app, **server_options(settings)) as base:
        yield base


def test_a_forged_forwarded_for_does_not_make_a_local_client_the_trusted_proxy(tmp_path):
    with serving(tmp_path, trusted_user_header="X-Remote-User", trusted_proxies="10.0.0.5", admin_users="admin") as base:
        forged = {"X-Remote-User": "admin", "X-Forwarded-For": "10.0.0.5"}
        response = httpx.delete(f"{base}/api/documents/hunan-2022", headers=forged)
        assert response.status_code in (401, 403), response.text
        assert httpx.get(f"{base}/api/documents").status_code == 401  # SSO only: nobody else gets in
    assert (tmp_path / "data" / "hunan-2022-ip-strong-province-plan.txt").exists()


def test_sso_behind_a_proxy_on_the_same_host_works(tmp_path):
    with serving(tmp_path, trusted_user_header="X-Remote-User", trusted_proxies="127.0.0.1") as base:
        response = httpx.get(f"{base}/api/documents", headers={"X-Remote-User": "alice", "X-Forwarded-For": "10.9.8.7"})
        assert response.status_code == 200, response.text


@pytest.mark.parametrize("header", [{"X-Forwarded-For": "10.9.8.7"}, {"X-Real-IP": "10.9.8.7"},
                                    {"Forwarded": "for=10.9.8.7;proto=https"}])
def test_a_visitor_forwarded_by_a_same_host_proxy_is_not_the_local_administrator(tmp_path, header):
    with serving(tmp_path) as base:  # no login configured: only the person at this machine administers
        response = httpx.delete(f"{base}/api/documents/hunan-2022", headers=header)
        assert response.status_code == 403, response.text
        assert "管理员" in response.json()["message"]
        assert httpx.get(f"{base}/api/documents").status_code == 200
    assert (tmp_path / "data" / "hunan-2022-ip-strong-province-plan.txt").exists()
