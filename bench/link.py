"""A TCP link to a server in a process of its own, which the fault benchmark cuts and
restores: SIGUSR1 cuts it (live connections reset, new ones refused), SIGUSR2 restores
it. Its own process, so that the load the benchmark generates cannot slow what passes
through it.

    python -m bench.link TARGET_HOST TARGET_PORT LISTEN_PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys

from tests.servers import Link


async def serve(target: tuple[str, int], port: int) -> None:
    link = Link(target, port)
    await link.restore()
    loop = asyncio.get_running_loop()
    busy: set[asyncio.Task[None]] = set()

    def run(action: str) -> None:
        task = loop.create_task(link.cut() if action == "cut" else link.restore())
        busy.add(task)
        task.add_done_callback(busy.discard)

    loop.add_signal_handler(signal.SIGUSR1, run, "cut")
    loop.add_signal_handler(signal.SIGUSR2, run, "restore")
    await asyncio.Event().wait()


if __name__ == "__main__":
    host, port, listen = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    asyncio.run(serve((host, port), listen))
