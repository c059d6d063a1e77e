"""Where a cached journey's memory goes: tracemalloc between two populations.

    .venv/bin/python -m bench.memory_profile [--base 100] [--population 500]
        [--programmes remediation,vip_thanks,above_the_line,campaigns] [--top 25]

Starts the dev server and a journey worker in this process, sends one purchase to
``--base`` journeys and waits until each has applied it, snapshots, does the same for
the rest of ``--population``, snapshots again, and prints what grew per cached journey:
by allocating line, and objects by type. Python allocations only: the SDK core's (Rust)
share shows in the RSS slope of ``bench.versus_bare``, not here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import logging
import tempfile
import tracemalloc
import uuid
from collections import Counter
from pathlib import Path

from temporalio import workflow

from bench.processes import dev_server

with workflow.unsafe.imports_passed_through():
    from bench import versus_bare
    from bench.versus_bare import deliver, journey_side, population, rss_kib
    from runtime.logging import configure_logging
    from runtime.settings import Settings
    from runtime.worker import running_worker
    from workflows.config import JourneyConfig

ROOT = str(Path(__file__).resolve().parent.parent)
# One frame: deeper tracebacks slow workflow tasks past their timeout.
FRAMES = 1
# Traced workflow tasks are several times slower: fewer at once keeps them in time.
TRACED_IN_FLIGHT = 4


def census() -> Counter[str]:
    """Objects the collector tracks, by type (pydantic models and dicts show here)."""
    gc.collect()
    return Counter(type(o).__qualname__ for o in gc.get_objects())


def snapshot() -> tracemalloc.Snapshot:
    gc.collect()
    return tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__)]
    )


def short(path: str) -> str:
    return path.split("site-packages/")[-1].removeprefix(ROOT + "/")


async def profile(base: int, size: int, enabled: frozenset[str] | None, top: int) -> None:
    env = await dev_server()
    crowd = population("prof", size)
    grown = size - base
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            task_queue=f"prof-{uuid.uuid4().hex[:6]}",
            database_url=f"sqlite+aiosqlite:///{tmp}/prof.db",
            journey=JourneyConfig(enabled=enabled),
        )
        async with env, running_worker(env.client, settings):
            side = journey_side(env.client, settings)
            # One journey first: the first workflow task imports and warms what every
            # later one uses, and 64 of them at once would outlast their timeout.
            await deliver(side, population("warm", 1), 0, 1)
            await deliver(side, crowd[:base], 0, 1)
            # Traced from here only: tracing the first population too would double the run.
            tracemalloc.start(FRAMES)
            versus_bare.IN_FLIGHT = TRACED_IN_FLIGHT
            rss_before, counted, before = rss_kib(), census(), snapshot()
            await deliver(side, crowd[base:], 0, 1)
            rss_after, after = rss_kib(), snapshot()
            tracemalloc.stop()
            grew = census()
            grew.subtract(counted)
    traced = sum(t.size for t in after.traces) - sum(t.size for t in before.traces)
    print(
        f"{grown} more cached journeys: RSS {(rss_after - rss_before) / grown:.1f} KiB each, "
        f"traced Python {traced / 1024 / grown:.1f} KiB each\n"
    )
    print(f"By allocating line (top {top}), KiB per journey, blocks per journey:")
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        print(
            f"{stat.size_diff / 1024 / grown:7.2f} {stat.count_diff / grown:7.1f}  "
            f"{short(frame.filename)}:{frame.lineno}"
        )
    print(f"\nObjects by type (top {top}), per journey:")
    for name, diff in grew.most_common(top):
        print(f"{diff / grown:7.1f}  {name}")


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=int, default=100)
    parser.add_argument("--population", type=int, default=500)
    parser.add_argument("--programmes", help="comma-separated (default: every registered one)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    enabled = frozenset(args.programmes.split(",")) if args.programmes else None
    configure_logging(logging.WARNING)
    asyncio.run(profile(args.base, args.population, enabled, args.top))


if __name__ == "__main__":
    importlib.import_module("bench.memory_profile").run()
