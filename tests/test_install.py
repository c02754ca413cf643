"""`pip install .` outside the source tree: the wheel carries its vocabulary and prompts (importlib.resources), and
`rag index && rag ask` work from any directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from rag.settings import PROJECT_ROOT

pytestmark = pytest.mark.slow


def test_a_wheel_installed_into_a_fresh_venv_indexes_and_answers_from_another_directory(tmp_path):
    # the wheel is built from a copy of the tracked files, so the build leaves nothing in the source tree
    source = tmp_path / "source"
    tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, check=True, capture_output=True, text=True).stdout
    for name in tracked.splitlines():
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, target, follow_symlinks=False)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels),
                    str(source)], check=True, timeout=600)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], check=True,
                          capture_output=True, text=True).stdout.strip()
    # the dependencies (gigabytes, offline) come from this environment's site-packages, read as a plain path: its .pth
    # files, among them the editable install pointing at the source tree, are not processed
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n", encoding="utf-8")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(next(wheels.glob("*.whl")))],
                   check=True, timeout=600)
    work = tmp_path / "elsewhere"
    shutil.copytree(PROJECT_ROOT / "data", work / "data")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(RAG_EMBEDDER="fake", RAG_LLM_BACKEND="extractive", PYTHONPATH="")
    where = subprocess.run([python, "-c", "import rag, rag.language.vocab as v; print(rag.__file__); print(v.package_dir('vocab'))"],
                           cwd=work, env=env, check=True, capture_output=True, text=True).stdout.split()
    assert all(str(venv) in line for line in where), where  # the installed copy, not the source tree
    rag = str(venv / "bin" / "rag")
    subprocess.run([rag, "index"], cwd=work, env=env, check=True, timeout=600, capture_output=True)
    assert (work / "index").is_dir()  # beside the documents, in the current directory
    out = subprocess.run([rag, "ask", "湖南省的地理标志发展目标是多少？"], cwd=work, env=env, check=True, timeout=600,
                         capture_output=True, text=True).stdout
    assert "[1]" in out and "湖南" in out, out
