"""rag/ as packages by idea: no import circles between modules, and each package imports only the layers below it
(the layers contract in pyproject.toml, the order rag/README.md gives)."""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent


def _layers() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (contract,) = [c for c in config["contracts"] if c["type"] == "layers"]
    return contract["layers"]


def test_no_module_imports_itself_through_others():
    graph = grimp.build_graph("rag")
    circles = sorted({tuple(sorted((m, n))) for m in graph.modules for n in graph.find_modules_directly_imported_by(m)
                      if graph.find_shortest_chain(importer=n, imported=m)})
    assert circles == []


def test_no_package_imports_a_higher_one():
    graph = grimp.build_graph("rag")
    layers = _layers()
    broken = graph.find_illegal_dependencies_for_layers(layers=layers, containers=set())
    assert [(d.importer, d.imported) for d in broken] == []


def test_every_package_is_a_layer_and_described():
    """A new package is given its place in the layers and a line in rag/README.md, or this fails."""
    packages = sorted(p.parent.name for p in (ROOT / "rag").glob("*/__init__.py"))
    layers = _layers()
    assert [p for p in packages if f"rag.{p}" not in layers] == []
    readme = (ROOT / "rag" / "README.md").read_text()
    assert [p for p in packages if f"`{p}/`" not in readme] == []
    for package in packages:
        doc = ast.get_docstring(ast.parse((ROOT / "rag" / package / "__init__.py").read_text()))
        assert doc, f"rag/{package}/__init__.py has no docstring"
    modules = sorted(p.stem for p in (ROOT / "rag").glob("*.py") if p.stem != "__init__")
    assert [m for m in modules if f"rag.{m}" not in layers] == []


def test_a_lower_layer_importing_a_higher_one_is_caught(tmp_path):
    """The check can fail: a copy of rag/ where the tokenizer imports the pipeline breaks the contract."""
    import shutil

    copy = tmp_path / "rag"
    shutil.copytree(ROOT / "rag", copy, ignore=shutil.ignore_patterns("__pycache__", "resources", "assets"))
    text = copy / "language" / "text.py"
    text.write_text(text.read_text() + "\n\ndef _late():\n    from rag.answer.pipeline import answer  # noqa\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    run = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=tmp_path,
                         capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert run.returncode != 0
    assert "rag.language.text -> rag.answer.pipeline" in run.stdout
