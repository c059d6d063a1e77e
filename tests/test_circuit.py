"""The circuit that answers at once while Temporal is unreachable, and the receipts held
while the store is: their rules, without servers (the outage tests run them on real
ones, ``tests/test_api_outage.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

from service.circuit import Circuit
from service.ingest import digest
from service.receipts import HeldReceipts
from tests.ingest import raw_event
from tests.servers import eventually
from workflows.events import CustomerEvent, customer_event_adapter

QUICK = timedelta(milliseconds=10)


async def test_the_circuit_opens_on_a_failure_and_closes_when_a_probe_gets_through() -> None:
    probes: list[str] = []
    reachable = asyncio.Event()

    async def probe() -> None:
        probes.append("probe")
        if not reachable.is_set():
            raise ConnectionError("refused")

    circuit = Circuit(probe, every=QUICK)
    assert not circuit.open
    circuit.trip("refused")
    circuit.trip("refused again")  # already open: one probe loop, not two
    assert circuit.open
    await soon(lambda: len(probes) >= 3)
    assert circuit.open
    reachable.set()
    await soon(lambda: not circuit.open)
    count = len(probes)
    await asyncio.sleep(0.05)
    assert len(probes) == count  # closed: no more probing
    await circuit.close()


async def soon(condition: Callable[[], bool]) -> None:
    async def holds() -> bool:
        return condition()

    await eventually(holds, bool, within=5, interval=0.01)


def event(customer_id: str) -> CustomerEvent:
    return customer_event_adapter.validate_python(raw_event(customer_id))


async def test_held_receipts_answer_resends_and_are_written_once_the_store_returns() -> None:
    written: list[list[str]] = []
    store_up = asyncio.Event()

    async def write(events: list[CustomerEvent]) -> None:
        if not store_up.is_set():
            raise OSError("connection refused")
        written.append([e.event_id for e in events])

    held = HeldReceipts(write, digest, limit=3, every=QUICK)
    first, second, third, fourth = (event("held-hal") for _ in range(4))
    held.hold([first, second])
    held.hold([second, third, fourth])  # a resend is held once; the oldest goes past 3
    assert len(held) == 3
    keys = [(e.customer_id, e.event_id) for e in (first, second, fourth)]
    assert held.digests(keys) == {keys[1]: digest(second), keys[2]: digest(fourth)}
    await asyncio.sleep(0.05)
    assert written == []  # still refused: still held
    assert len(held) == 3
    store_up.set()
    await soon(lambda: not held)
    assert written == [[second.event_id, third.event_id, fourth.event_id]]
    await held.close()
    assert written == [[second.event_id, third.event_id, fourth.event_id]]
