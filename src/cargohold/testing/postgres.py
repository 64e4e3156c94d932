"""A throwaway PostgreSQL cluster for tests and benchmarks.

Tests must run against a real PostgreSQL (the SQLite and PostgreSQL
repositories differ in locking, collation and SQL dialect), but CI machines
have no server running and we may talk to 127.0.0.1 only. So we make our own:
``initdb`` into a temporary directory, ``pg_ctl start`` on a free loopback
port with durability switched off (``fsync=off``: the data is thrown away),
one fresh database per test via :meth:`PostgresCluster.create_database`, and
``pg_ctl stop`` plus removal of the directory at the end.

Binaries are looked up on ``PATH`` and under ``/usr/lib/postgresql/*/bin``.
If there are none and we are root on a Debian-like system, Debian's
``postgresql`` package is installed with apt. ``initdb`` refuses to run as
root, so as root every server command runs as the ``postgres`` user (created
if missing, ``nobody`` as a last resort) in a directory that user owns.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path
from types import TracebackType

from cargohold.testing import debian

_TIMEOUT = 120
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PostgresUnavailable(RuntimeError):
    """PostgreSQL binaries are missing and cannot be installed here."""


def find_bin_dir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest version first), or None."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return Path(initdb).resolve().parent
    candidates = glob.glob("/usr/lib/postgresql/*/bin")

    def version(path: str) -> tuple[int, ...]:
        digits = Path(path).parent.name
        return tuple(int(p) for p in digits.split(".") if p.isdigit())

    for candidate in sorted(candidates, key=version, reverse=True):
        directory = Path(candidate)
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file():
            return directory
    return None


def ensure_bin_dir(install: bool = True) -> Path:
    """Find the PostgreSQL binaries, installing Debian's package first if allowed and needed."""
    try:
        return debian.ensure(find_bin_dir, "postgresql") if install else _found(find_bin_dir())
    except debian.PackageUnavailable as exc:
        raise PostgresUnavailable(str(exc)) from exc


def _found(directory: Path | None) -> Path:
    if directory is None:
        raise PostgresUnavailable("initdb/pg_ctl not found on PATH or in /usr/lib/postgresql")
    return directory


def _server_user() -> pwd.struct_passwd:
    """The unprivileged account a root process runs the server as."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam("postgres")
    if shutil.which("useradd"):
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/bin/false", "postgres"],
            capture_output=True,
            check=False,
        )
        with contextlib.suppress(KeyError):
            return pwd.getpwnam("postgres")
    return pwd.getpwnam("nobody")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresCluster:
    """One private PostgreSQL server on 127.0.0.1; use as a context manager."""

    def __init__(self, bin_dir: Path | None = None, *, install: bool = True) -> None:
        self._bin_dir = bin_dir
        self._install = install
        self.root: Path | None = None
        self.port: int | None = None
        self._prefix: list[str] = []

    @property
    def bin_dir(self) -> Path:
        if self._bin_dir is None:
            self._bin_dir = ensure_bin_dir(self._install)
        return self._bin_dir

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "cluster not started"
        return self.root / "data"

    def url(self, database: str = "postgres") -> str:
        """The SQLAlchemy asyncpg URL of a database in this cluster."""
        assert self.port is not None, "cluster not started"
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresCluster:
        """initdb and start the server; raises ``PostgresUnavailable`` or ``RuntimeError``."""
        bin_dir = self.bin_dir
        if os.geteuid() == 0:
            user = _server_user()
            # pytest's own tmp dirs are root-only; /tmp is traversable by everyone.
            self.root = Path(tempfile.mkdtemp(prefix="cargohold-pg-", dir="/tmp"))
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._prefix = ["runuser", "-u", user.pw_name, "--"]
        else:
            self.root = Path(tempfile.mkdtemp(prefix="cargohold-pg-"))
        atexit.register(self.stop)
        try:
            self._server(
                bin_dir / "initdb",
                *("-D", str(self.data_dir), "-A", "trust", "-U", "postgres"),
                *("-E", "UTF8", "--no-locale", "--no-sync"),
            )
            self._start_on_free_port(bin_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def _start_on_free_port(self, bin_dir: Path) -> None:
        assert self.root is not None
        last_error = ""
        for _ in range(5):
            port = _free_port()
            options = (
                f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1 "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=200"
            )
            log = self.root / "log"
            started = self._server(
                bin_dir / "pg_ctl",
                *("-D", str(self.data_dir), "-o", options, "-l", str(log)),
                *("-w", "-t", "60", "start"),
                check=False,
            )
            if started.returncode == 0:
                self.port = port
                return
            last_error = started.stdout + started.stderr
            with contextlib.suppress(OSError):
                last_error += log.read_text()[-2000:]
        raise RuntimeError(f"PostgreSQL did not start:\n{last_error}")

    def _server(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a server-side command, as the server user when we are root."""
        done = subprocess.run(
            [*self._prefix, *(str(a) for a in args)],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done

    def _client(self, program: str, *args: str) -> None:
        assert self.port is not None, "cluster not started"
        connect = ("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres")
        done = subprocess.run(
            [str(self.bin_dir / program), *connect, *args],
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{done.stderr}")

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a random name by default); returns its URL."""
        name = name or f"t_{uuid.uuid4().hex[:16]}"
        if not _DB_NAME.match(name):
            raise ValueError(f"unsafe database name {name!r}")
        self._client("createdb", name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        if not _DB_NAME.match(name):
            raise ValueError(f"unsafe database name {name!r}")
        self._client("dropdb", "--if-exists", name)

    def stop(self) -> None:
        """Stop the server at once and delete its files (idempotent)."""
        atexit.unregister(self.stop)
        root, self.root = self.root, None
        if root is None:
            return
        if (root / "data" / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                pg_ctl = str(self.bin_dir / "pg_ctl")
                subprocess.run(
                    [
                        *self._prefix,
                        pg_ctl,
                        "-D",
                        str(root / "data"),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                    cwd=root,
                    capture_output=True,
                    timeout=_TIMEOUT,
                    check=False,
                )
        self.port = None
        shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
