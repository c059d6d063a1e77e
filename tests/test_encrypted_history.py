"""Encrypted journeys on real Temporal servers: the raw history holds none of the
customer's personal values, the journey decodes and replays with the codec, and once the
customer is erased nothing in that history decrypts any more. ``pytest -s`` prints the
evidence."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.protobuf.message import Message
from sqlmodel import col, select
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.data_keys import CACHE_TTL, new_master_key
from activities.store import DataKey, Store
from runtime.codec import ENCODING, EncryptionCodec, PayloadDecryptionError, data_converter
from runtime.settings import EncryptionSettings, Settings
from runtime.temporal import journey_view, request_erasure, send_event
from runtime.worker import WORKFLOW_RUNNER, running_worker
from starter.devstack import time_skipping_server
from testkit import scenario
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS, event
from tests.servers import dev_server, eventually
from workflows.config import JourneyConfig
from workflows.journey import CustomerJourney, journey_id

EMAIL = "ann.secret@example.com"
CATEGORY = "velvet-opera-gloves"
AMOUNT = "987.65"
ADDRESS = "12 Rue Oberkampf"
# What the customer's events carry, as it would appear in a payload's JSON.
PERSONAL = [value.encode() for value in (EMAIL, CATEGORY, AMOUNT, ADDRESS)]
CONFIG = JourneyConfig(holdouts=NO_HOLDOUTS, contact=NEVER_QUIET)


def encrypted(database: Path) -> Settings:
    key = base64.b64encode(new_master_key()).decode()
    return Settings(
        database_url=f"sqlite+aiosqlite:///{database}",
        task_queue=f"encrypted-{uuid.uuid4().hex[:8]}",
        journey=CONFIG,
        encryption=EncryptionSettings(master_keys={"k1": key}, active_master_key="k1"),
    )


@pytest.fixture(scope="module")
async def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = encrypted(tmp_path_factory.mktemp("encrypted") / "equator.db")
    store = Store(settings.database_url)
    await store.migrate()
    await store.close()
    return settings


@pytest.fixture(scope="module")
async def encrypted_env(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    """A dev server whose client (and so the worker on it) encrypts as ``settings`` say."""
    async with dev_server(settings=settings) as env:
        yield env


def payloads_in(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every payload in a protobuf message, wherever it sits, with where."""
    if isinstance(message, Payload):
        yield path, message
        return
    for field, value in message.ListFields():
        name = f"{path}.{field.name}" if path else field.name
        if isinstance(value, Message):
            yield from payloads_in(value, name)
        elif hasattr(value, "items"):
            for key, item in value.items():
                if isinstance(item, Message):
                    yield from payloads_in(item, f"{name}[{key}]")
        elif field.type == field.TYPE_MESSAGE:
            for index, item in enumerate(value):
                yield from payloads_in(item, f"{name}[{index}]")


def plain_by_design(path: str) -> bool:
    """Payloads Temporal keeps in clear whatever the codec: search attributes, and the
    markers' own metadata that the SDK's core writes (``patch-data``: a patch's id;
    ``data``: a local activity's sequence, id, type, attempt and times), not a local
    activity's ``result``."""
    return "search_attributes" in path or (
        "marker_recorded_event_attributes.details" in path and ".details[result]" not in path
    )


def raw(history: WorkflowHistory) -> bytes:
    return History(events=history.events).SerializeToString()


def in_clear(history: WorkflowHistory) -> list[str]:
    """Where the history's unencrypted payloads are (each event's place in the history
    left out); each one must be plain by design."""
    found = payloads_in(History(events=history.events))
    clear = sorted(
        {path.split(".", 1)[1] for path, p in found if p.metadata["encoding"] != ENCODING}
    )
    assert [path for path in clear if not plain_by_design(path)] == []
    return clear


def sealed(history: WorkflowHistory) -> list[Payload]:
    """The history's encrypted payloads, once its others are known to be plain by design."""
    in_clear(history)
    found = payloads_in(History(events=history.events))
    return [payload for _, payload in found if payload.metadata["encoding"] == ENCODING]


async def key_rows(settings: Settings, customer: str) -> list[DataKey]:
    store = Store(settings.database_url)
    try:
        async with store.reading() as session:
            query = select(DataKey).where(col(DataKey.customer_id) == customer)
            return list((await session.exec(query)).all())
    finally:
        await store.close()


def replayer(converter: DataConverter) -> Replayer:
    return Replayer(
        workflows=[CustomerJourney], data_converter=converter, workflow_runner=WORKFLOW_RUNNER
    )


def codec_of(converter: DataConverter) -> EncryptionCodec:
    codec = converter.payload_codec
    assert isinstance(codec, EncryptionCodec)
    return codec


async def test_erasure_leaves_a_history_nobody_can_read(
    encrypted_env: WorkflowEnvironment, settings: Settings
) -> None:
    client = encrypted_env.client
    customer = f"ann-{uuid.uuid4().hex[:6]}"
    now = datetime.now(UTC)
    events = [
        event(customer, "profile_updated", now, email=EMAIL, location=ADDRESS),
        # The smaller first: the LifetimeValue search attribute, in clear by design, never
        # equals the distinctive amount (it is 12.34, then 999.99).
        event(customer, "purchase", now, amount="12.34", category="socks"),
        event(customer, "purchase", now, amount=AMOUNT, category=CATEGORY),
    ]
    # The client without the codec sees what Temporal (and anyone reading it) holds.
    config = client.config()
    config["data_converter"] = pydantic_data_converter
    plain = Client(**config)
    handle = client.get_workflow_handle(journey_id(customer))
    async with running_worker(client, settings):
        for each in events:
            await send_event(client, settings.task_queue, settings.journey, each)
        view = await eventually(
            lambda: journey_view(client, customer), lambda v: v.state.events_applied == 3
        )
        assert view.state.profile.email == EMAIL  # the state query decodes through the codec

        before = await plain.get_workflow_handle(journey_id(customer)).fetch_history()
        assert [value for value in PERSONAL if value in raw(before)] == []
        payloads = sealed(before)
        decoded = b"".join(p.data for p in await codec_of(client.data_converter).decode(payloads))
        assert all(value in decoded for value in PERSONAL)
        # A worker that has never seen the journey (another process) replays it from its
        # first event.
        elsewhere = data_converter(settings)
        await replayer(elsewhere).replay_workflow(before)
        print(f"\n{len(before.events)} events, {len(payloads)} payloads encrypted;")
        print(f"in clear by design: {in_clear(before)}")
        attributes = await handle.describe()
        print(f"the search attributes, in clear: {dict(attributes.search_attributes)}")
        print(f"a payload's metadata: {dict(payloads[0].metadata)}")
        print(f"its first bytes: {payloads[0].data[:24].hex()}…")
        print(f"none of {[v.decode() for v in PERSONAL]} in the raw history's bytes")

        await request_erasure(client, customer, "erase-1")
        await eventually(handle.describe, lambda d: d.status == WorkflowExecutionStatus.COMPLETED)
        # The shredder deletes the keys once the journey has ended.
        await eventually(lambda: key_rows(settings, customer), lambda rows: rows == [])

    after = await plain.get_workflow_handle(journey_id(customer)).fetch_history()
    assert [value for value in PERSONAL if value in raw(after)] == []
    everything = sealed(after)
    assert len(everything) > len(payloads)
    # Neither this process's codec (the shredder emptied its cache) nor a new process's.
    newcomer = data_converter(settings)
    for codec in (codec_of(client.data_converter), codec_of(newcomer)):
        for payload in everything:
            with pytest.raises(PayloadDecryptionError, match="is gone") as failure:
                await codec.decode([payload])
    # A process that read the keys before keeps them until its cache's TTL (the window
    # the README gives; tests/test_codec.py sees it close).
    assert await codec_of(elsewhere).decode(everything[:1])
    # A worker replaying the erased journey fails its workflow task (a query of it would
    # fail the same way), the failure's type in clear, its message encrypted.
    with pytest.raises(RuntimeError, match="PayloadDecryptionError"):
        await replayer(newcomer).replay_workflow(after)
    orphans = await key_rows(settings, customer)
    print(f"after erasure, none of {len(everything)} payloads decrypts: {failure.value}")
    print(f"except, for up to {CACHE_TTL}, in a process that read the keys before")
    print(f"keys of the customer after a replay of the erased journey: {len(orphans)}")
    for converter in (elsewhere, newcomer):
        await codec_of(converter).keys.close()


async def test_a_journey_on_simulated_time_runs_encrypted(tmp_path: Path) -> None:
    """Timers, local activities, a ladder's activities and their summaries, on the
    time-skipping server, through the codec."""
    settings = encrypted(tmp_path / "equator.db")
    async with (
        time_skipping_server(settings) as env,
        scenario(CONFIG, settings.database_url, env) as world,
    ):
        await world.event("vera", "purchase", day=0, amount="12.34", category="socks")
        await world.event("vera", "purchase", day=1, amount=AMOUNT, category=CATEGORY)
        await world.event("vera", "profile_updated", day=2, email=EMAIL, location=ADDRESS)
        await world.at(day=60)  # silent: the silence ladder climbs
        assert "silence" in [sent.cause for sent in await world.sent("vera")]
        history = await env.client.get_workflow_handle(journey_id("vera")).fetch_history()
    assert [value for value in PERSONAL if value in raw(history)] == []
    assert sealed(history)
