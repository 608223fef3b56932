"""The launcher's restart policy on a real process that exits at once (a module that does not
exist), with the delays shortened: bounded doubling, a crash loop shown with the end of the log,
and the delay reset for a service that had been running a while."""
import asyncio
import re

import pytest

from posint_common.testing import eventually
from posint_devstack import launcher


@pytest.fixture
def crashing(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "FIRST_RESTART_DELAY_S", 0.05)
    monkeypatch.setattr(launcher, "MAX_RESTART_DELAY_S", 0.2)
    service = launcher.Service("posint_no_such_service", tmp_path / "crashing.log", env={})
    service.start()
    return service


async def supervised(service, capsys, restarts: int) -> str:
    """Run the launcher's supervision of ``service`` until it announced ``restarts`` restarts."""
    task = asyncio.create_task(launcher.Stack.keep_running(None, service))
    printed = []

    def announced() -> bool:
        printed.append(capsys.readouterr().out)
        return "".join(printed).count("; restarting in") >= restarts

    try:
        await eventually(announced, 30, f"{restarts} restarts")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        service.process.wait(10)
    return "".join(printed)


def delays(console: str) -> list[str]:
    return re.findall(r"posint_no_such_service exited \(status 1\); restarting in ([\d.]+) s", console)


async def test_a_crash_loop_backs_off_up_to_the_cap_and_shows_the_log(crashing, capsys):
    console = await supervised(crashing, capsys, restarts=launcher.CRASH_LOOP_EXITS)
    assert delays(console) == ["0.05", "0.1", "0.2", "0.2", "0.2"], console
    assert "posint_no_such_service keeps crashing" in console, console
    assert "No module named posint_no_such_service" in console.split("keeps crashing", 1)[1], console


async def test_a_service_that_ran_a_while_restarts_after_the_first_delay(crashing, capsys, monkeypatch):
    monkeypatch.setattr(launcher, "STABLE_AFTER_S", 0)  # every run counts as a long one
    console = await supervised(crashing, capsys, restarts=launcher.CRASH_LOOP_EXITS + 1)
    assert set(delays(console)) == {"0.05"} and "keeps crashing" not in console, console
