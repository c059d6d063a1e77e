"""Erasure without leftovers, and the audit, over real HTTP: a dev server whose journeys
are encrypted, a worker, the API, on SQLite and on Postgres. ``pytest -s`` prints the
audit and the raw history before and after."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import SQLModel
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from activities.audit import trail
from activities.store import ErasedCustomer, Store, customer_digest
from runtime.codec import PayloadDecryptionError, data_converter
from runtime.credentials import new_key
from runtime.temporal import steer
from runtime.worker import running_worker
from service.ingest import Ingest as IngestService
from service.ingest import Unavailable
from tests.conftest import postgres_database
from tests.ingest import OPS_KEY, Ingest, ingest_api, raw_event, settings_for
from tests.servers import dev_server, eventually
from tests.test_encrypted_history import codec_of, encrypted, key_rows, raw, sealed
from workflows.events import customer_event_adapter
from workflows.journey import CustomerJourney, journey_id
from workflows.operator import OperatorRequest

EMAIL = "rosa.private@example.org"


@dataclass
class Stack:
    api: Ingest
    # The dev server's client, on the worker's codec (whose cache the shredder empties).
    temporal: Client


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """Encryption on, as a careful deployment runs it; the test's client, the worker and
    the API share the store that holds the data keys."""
    async with AsyncExitStack() as opened:
        folder = tmp_path_factory.mktemp("erasure")
        if request.param == "sqlite":
            url = f"sqlite+aiosqlite:///{folder / 'equator.db'}"
        else:
            url = await opened.enter_async_context(postgres_database())
        key = new_key()
        # Keys cached for 2 s, not a minute: a returning customer waits that long.
        encryption = encrypted(folder / "unused.db").encryption.model_copy(
            update={"key_cache_ttl": timedelta(seconds=2)}
        )
        settings = settings_for("", url, key).model_copy(update={"encryption": encryption})
        store = Store(url)
        await store.migrate()
        await store.close()
        env = await opened.enter_async_context(dev_server(settings=settings))
        address = env.client.service_client.config.target_host
        settings = settings.model_copy(update={"temporal_address": address})
        await opened.enter_async_context(running_worker(env.client, settings))
        yield Stack(await opened.enter_async_context(ingest_api(settings, key)), env.client)


def customer() -> str:
    return f"rosa-{uuid.uuid4().hex[:8]}"


async def applied(api: Ingest, who: str, count: int) -> None:
    await eventually(
        lambda: api.http.get(f"/v1/customers/{who}/journey"),
        lambda r: r.status_code == 200 and r.json()["state"]["events_applied"] >= count,
    )


async def rows_naming(store: Store, text: str) -> list[tuple[str, dict[str, Any]]]:
    """Every row of every table of the store with ``text`` in any of its values."""
    found = []
    async with store.reading() as session:
        connection = await session.connection()
        for table in SQLModel.metadata.sorted_tables:
            for row in (await connection.execute(table.select())).mappings():
                if any(text in str(value) for value in row.values()):
                    found.append((table.name, dict(row)))
    return found


async def test_an_erasure_raced_by_a_sender_leaves_nothing_of_the_customer(stack: Stack) -> None:
    api = stack.api
    who = customer()
    await api.post("/v1/events", raw_event(who, "profile_updated", properties={"email": EMAIL}))
    for _ in range(2):
        await api.post("/v1/events", raw_event(who))
    await applied(api, who, 3)

    # A sender that keeps posting the customer's events while they are erased.
    answers: list[int] = []
    stop = asyncio.Event()

    async def sender() -> None:
        while not stop.is_set():
            answers.append((await api.post("/v1/events", raw_event(who))).status_code)

    sending = asyncio.create_task(sender())
    await eventually(lambda: asyncio.sleep(0, len(answers)), lambda sent: sent >= 5)
    erased = await api.http.delete(f"/v1/customers/{who}")
    assert erased.status_code == 202
    handle = stack.temporal.get_workflow_handle(journey_id(who))
    await eventually(handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED)
    ended_at = len(answers)
    await eventually(lambda: asyncio.sleep(0, len(answers)), lambda sent: sent >= ended_at + 10)
    stop.set()
    await sending

    # Accepted until the erasure, refused from then on: never one then the other again.
    assert set(answers) == {202, 409}
    first_refusal = answers.index(409)
    assert set(answers[first_refusal:]) == {409}
    # The data keys go once the journey has ended; then nothing names the customer.
    await eventually(lambda: key_rows(api.settings, who), lambda rows: rows == [])
    # Asking for the erased journey (its state is unreadable now) makes no key either:
    # the answer is what Temporal knows without it, the run ended, nothing of the customer.
    gone = (await api.http.get(f"/v1/customers/{who}/journey")).json()
    assert (gone["freshness"], gone["status"], gone["customer"]) == (
        "published",
        "completed",
        None,
    )
    assert await rows_naming(api.store, who) == []
    assert await rows_naming(api.store, EMAIL) == []
    async with api.store.reading() as session:
        tombstone = await session.get(ErasedCustomer, customer_digest(who))
    assert tombstone is not None
    assert tombstone.request_id == erased.json()["request_id"]

    entries = await trail(api.store, who)
    assert [(e.action, e.outcome, e.actor, e.via) for e in entries] == [
        ("customer.erase", "accepted", "pos", "api"),
        ("customer.erase", "erased", "pos", "api"),
    ]
    assert {e.request_id for e in entries} == {erased.json()["request_id"]}

    # Temporal keeps the history until retention: no personal value in clear, and no
    # payload that decrypts any more.
    config = stack.temporal.config()
    config["data_converter"] = pydantic_data_converter
    history = await Client(**config).get_workflow_handle(journey_id(who)).fetch_history()
    assert EMAIL.encode() not in raw(history)
    payloads = sealed(history)
    newcomer = data_converter(api.settings)
    for codec in (codec_of(stack.temporal.data_converter), codec_of(newcomer)):
        for payload in payloads:
            with pytest.raises(PayloadDecryptionError, match="is gone"):
                await codec.decode([payload])
    await codec_of(newcomer).keys.close()
    # The customer comes back: asked to wait until no process can still hold a key of
    # theirs, then their tombstone goes and they get a key of their own.
    returned = raw_event(who)
    # (An API whose processes keep keys an hour asks to wait an hour.)
    settings = api.settings
    patient = IngestService(
        stack.temporal, api.store, settings.task_queue, settings.journey, timedelta(seconds=5),
        key_cache_ttl=timedelta(hours=1),
    )  # fmt: skip
    event = customer_event_adapter.validate_python(returned)
    [waits] = await patient.deliver([event], customer_returned=True)
    assert isinstance(waits, Unavailable)
    assert "retry in a minute" in waits.reason
    back = await eventually(
        lambda: api.http.post("/v1/events", json=returned, params={"customer_returned": "true"}),
        lambda answer: answer.status_code != 503,
    )
    assert back.status_code == 202
    await applied(api, who, 1)
    async with api.store.reading() as session:
        assert await session.get(ErasedCustomer, customer_digest(who)) is None
    assert len(await key_rows(api.settings, who)) == 1
    print(f"\n{len(answers)} posts raced the erasure: {first_refusal} accepted, then 409s")
    for entry in entries:
        print(f"audit: {entry.model_dump_json(exclude={'id'})}")


async def test_operator_actions_are_applied_refused_and_audited(stack: Stack) -> None:
    api = stack.api
    who = customer()
    await api.post("/v1/events", raw_event(who))
    await applied(api, who, 1)

    ops = httpx.AsyncClient(base_url=api.url, headers={"Authorization": f"Bearer {OPS_KEY}"})
    async with ops:
        paused = await ops.post(f"/v1/customers/{who}/journey:pause", json={"reason": "call"})
        assert paused.status_code == 200
        assert paused.json()["state"]["paused_by"] == "ops"
        again = await ops.post(f"/v1/customers/{who}/journey:pause")
        assert again.status_code == 409
        assert again.json()["detail"] == "already paused by ops"
        # Over Temporal (the CLI, the UI), who asked is who the request says.
        request = OperatorRequest(by="ann", reason="done")
        resumed = await steer(stack.temporal, who, CustomerJourney.resume, request)
        assert resumed.state.paused_by is None
        no_cause = await ops.post(f"/v1/customers/{who}/journey:start-ladder", json={})
        assert no_cause.status_code == 422
        nobody = customer()
        assert (await ops.post(f"/v1/customers/{nobody}/journey:resume")).status_code == 404

    entries = await eventually(lambda: trail(api.store, who), lambda found: len(found) == 3)
    assert sorted((e.action, e.outcome, e.actor, e.via) for e in entries) == [
        ("journey.pause", "applied", "ops", "api"),
        ("journey.pause", "refused", "ops", "api"),
        ("journey.resume", "applied", "ann", "temporal"),
    ]
    refused = next(e for e in entries if e.outcome == "refused")
    assert refused.detail == "already paused by ops"
    assert [(e.action, e.outcome) for e in await trail(api.store, nobody)] == [
        ("journey.resume", "not_found")
    ]
    # The free text an operator typed stays in the journey's timeline, not the audit.
    assert all("call" not in e.detail for e in entries)
