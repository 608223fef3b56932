"""``python -m sandbox.pos``: the reference POS until stopped (SIGINT/SIGTERM)."""
from __future__ import annotations

import asyncio
import json
import signal
import sys

from posint_common.log import configure_logging
from posint_common.settings import load_settings

from sandbox.pos.app import ReferencePos
from sandbox.pos.settings import PosSettings


async def serve(settings: PosSettings) -> int:
    reference = ReferencePos(settings)
    await reference.start()
    # one JSON line the launcher reads (the port picked when POS_CONTROL_PORT=0)
    print(json.dumps({"event": "service_started", "service": "sandbox.pos", "ports": {"control": reference.port}}),
          flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([stopped, reference.task], return_when=asyncio.FIRST_COMPLETED)
        failed = reference.task.done()  # its loop ended on its own: exit 1, so a supervisor restarts it
    finally:
        stopped.cancel()
        await reference.stop()
    return 1 if failed else 0


def main() -> int:
    settings = load_settings(PosSettings)
    configure_logging("sandbox.pos", "INFO")
    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
