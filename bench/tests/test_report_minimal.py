"""The load report with the minimal target: its rows, its ratio column and the architecture lines
(what anything built this way allows on the box, against the floor and the stack). Pure functions,
no stack: run with ``.venv/bin/python -m pytest bench/tests -q``."""
from __future__ import annotations

from bench.__main__ import cpu_report, report
from bench.cpu import Meter
from bench.load import LoadResult

SETTINGS = {"kafka_fetch_wait_busy_ms": 5, "kafka_fetch_wait_idle_ms": 500, "kafka_busy_window_ms": 2000}
RPS = {("stack", 1): 50, ("stack", 32): 600, ("floor", 1): 100, ("floor", 32): 2000,
       ("minimal", 1): 80, ("minimal", 32): 1500, ("baseline", 1): 400, ("baseline", 32): 3000}
P50 = {("stack", 1): 12.0, ("floor", 1): 8.0, ("minimal", 1): 10.0, ("baseline", 1): 2.0}


def results() -> dict:
    """One second per run; every latency of a run equals its p50 (10 ms at concurrency 32)."""
    return {key: LoadResult(key[1], 1.0, rps, 0, [P50.get(key, 10.0)] * rps) for key, rps in RPS.items()}


def test_minimal_rows_ratios_and_the_architecture_lines() -> None:
    text = report(results(), SETTINGS, 5, 2, True)
    assert "| minimal | 32 | 1500 | 10.0 |" in text
    rows = [line for line in text.splitlines() if line.startswith(("| stack |", "| floor |", "| minimal |", "| baseline |"))]
    assert [row.split(" | ")[0][2:] for row in rows[:4]] == ["stack", "floor", "minimal", "baseline"]  # run order
    assert "stack/minimal req/s | stack/minimal p50" in text
    assert "| 32 | 0.30x | 1.00x | 0.40x | 1.00x | 0.20x | 1.00x |" in text
    assert ("what the architecture allows: minimal c32 = 1500 req/s = 0.75x the floor (goal for the stack: 0.8x); "
            "minimal c1 p50 = 10.0 ms = 1.25x the floor's (goal: 1.3x)") in text
    assert "stack / minimal c32 = 0.40x req/s; stack / minimal c1 p50 = 1.20x" in text
    assert text.index("| goal | measured | status |") < text.index("what the architecture allows")


def test_no_architecture_lines_without_minimal() -> None:
    without = {key: r for key, r in results().items() if key[0] != "minimal"}
    text = report(without, SETTINGS, 5, 2, True)
    assert "minimal" not in text and "architecture" not in text


def test_cpu_table_has_minimal_columns_and_process_kinds() -> None:
    meter = Meter(dict)
    meter.seconds, meter.elapsed = {"minimal http": 0.3, "minimal service": 0.6, "tansu": 0.15,
                                    "load generator (HTTP client)": 0.45}, 1.0
    text = cpu_report({("minimal", 32): results()["minimal", 32]}, {("minimal", 32): meter})
    assert "| process | minimal c32 |" in text
    assert "| minimal http | 0.20 |" in text and "| minimal service | 0.40 |" in text
    assert "| **total** | **0.70** |" in text  # the load generator shown, not counted
    assert text.index("minimal http") < text.index("minimal service") < text.index("| tansu")
