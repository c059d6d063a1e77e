"""A worker process: `python worker.py` configures logging and tracing, connects to the
configured Temporal and runs the journeys' worker until stopped. It only wires things
(see ``runtime.worker``); nothing imports it."""

from __future__ import annotations

import asyncio

from runtime.logging import configure_logging
from runtime.settings import Settings
from runtime.telemetry import configure_tracing
from runtime.worker import run_worker


def main() -> None:
    settings = Settings()
    configure_logging()
    configure_tracing(settings.telemetry)
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
