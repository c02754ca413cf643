"""Run a command against a throwaway local PostgreSQL + pgvector (rag/store/pglocal.py), with RAG_STORE pointing at it.

    .venv/bin/python scripts/with_postgres.py -- sh -c 'rag index && rag eval --backend extractive'

The server lives in a temporary directory on a free port and is removed when the command ends. For a real
deployment, point RAG_STORE at your own PostgreSQL (README: More than one machine)."""

from __future__ import annotations

import os
import subprocess
import sys

from rag.store.pglocal import running_server


def main() -> int:
    argv = sys.argv[1:]
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print(__doc__)
        return 2
    with running_server() as server:
        print(f"PostgreSQL: {server.url}", file=sys.stderr, flush=True)
        return subprocess.run(argv, env=os.environ | {"RAG_STORE": server.url}).returncode


if __name__ == "__main__":
    sys.exit(main())
