"""CPU used by an idle stack, per process kind (see bench.cpu for how the processes are found)."""
from __future__ import annotations

import time

from bench import cpu


def measure(gateway_url: str, database_url: str, seconds: float) -> dict[str, float]:
    """Percent of one core per kind over ``seconds`` (plus "total")."""
    meter = cpu.Meter(lambda: cpu.stack_processes(gateway_url, database_url))
    meter.start()
    time.sleep(seconds)
    by_kind = {kind: used / meter.elapsed * 100 for kind, used in meter.stop().items()}
    by_kind["total"] = sum(by_kind.values())
    return by_kind
