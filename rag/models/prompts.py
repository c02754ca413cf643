"""Prompt templates are files in `prompts/`, rendered with Jinja2 StrictUndefined: a missing variable is an error."""

from __future__ import annotations

import functools
from pathlib import Path

from rag.errors import RagError

TEMPLATES = ("system", "answer", "rewrite", "refusal", "scope", "vanilla")


@functools.lru_cache(maxsize=8)
def _environment(prompts_dir: str):
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(prompts_dir),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(prompts_dir: Path, name: str, **variables) -> str:
    """Render `prompts/<name>.txt`; RagError if the file is missing or a variable is undefined."""
    import jinja2

    try:
        return _environment(str(prompts_dir)).get_template(f"{name}.txt").render(**variables).strip()
    except jinja2.TemplateNotFound as exc:
        raise RagError(f"prompt template {name}.txt not found in {prompts_dir}", "提示词模板缺失。") from exc
    except jinja2.UndefinedError as exc:
        raise RagError(f"prompt template {name}.txt: {exc}", "提示词模板变量缺失。") from exc
