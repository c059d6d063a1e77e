"""The payload codec and its data keys, on SQLite and Postgres: payloads sealed under their
customer's key (or the shared one), tampering refused, master keys rotated, keys created
once however many processes race, erasure marking then shredding, the cache's window; the
encryption settings and `equator new-master-key`."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from sqlmodel import col, select
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    SerializationContext,
    WorkflowSerializationContext,
)
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.data_keys import SHARED, DataKeys, LocalMasterKeys, new_master_key
from activities.erasure import ErasureActivities
from activities.store import DataKey, Store
from runtime.codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    PayloadDecryptionError,
    data_converter,
    owner_of,
)
from runtime.settings import EncryptionSettings, Settings
from tests.servers import equator, eventually
from workflows.contracts import EraseRequest
from workflows.journey import journey_id

EMAIL = "ann.secret@example.com"
OCTOBER, NOVEMBER = new_master_key(), new_master_key()


def master(active: str = "2026-10", **keys: bytes) -> LocalMasterKeys:
    return LocalMasterKeys(keys or {"2026-10": OCTOBER}, active)


@pytest.fixture
async def keys(store: Store, database_url: str) -> AsyncIterator[DataKeys]:
    """Data keys on each engine (the ``store`` fixture has migrated it)."""
    data_keys = DataKeys(database_url, master())
    yield data_keys
    await data_keys.close()


def journey(customer_id: str) -> WorkflowSerializationContext:
    return WorkflowSerializationContext(namespace="default", workflow_id=journey_id(customer_id))


def activity_of(workflow_id: str | None) -> ActivitySerializationContext:
    return ActivitySerializationContext(
        namespace="default",
        activity_id="1",
        activity_type="record_events",
        activity_task_queue="q",
        workflow_id=workflow_id,
        workflow_type="CustomerJourney" if workflow_id else None,
        is_local=True,
    )


def payload(value: Any) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


async def sealed(keys: DataKeys, context: SerializationContext | None, value: Any) -> Payload:
    codec = EncryptionCodec(keys)
    [encrypted] = await (codec.with_context(context) if context else codec).encode([payload(value)])
    return encrypted


async def rows(store: Store, customer_id: str) -> list[DataKey]:
    async with store.reading() as session:
        query = select(DataKey).where(col(DataKey.customer_id) == customer_id)
        return list((await session.exec(query)).all())


async def test_a_journeys_payloads_round_trip_sealed_under_the_customers_key(
    keys: DataKeys,
) -> None:
    originals = [payload({"email": EMAIL}), payload(Decimal("987.65")), payload(None)]
    codec = EncryptionCodec(keys).with_context(journey("ann"))
    encrypted = await codec.encode(originals)
    ann = await keys.current("ann")
    for original, each in zip(originals, encrypted, strict=True):
        assert dict(each.metadata) == {"encoding": ENCODING, KEY_ID: ann.id.encode()}
        assert original.SerializeToString() not in each.data  # metadata sealed too
    assert EMAIL.encode() not in b"".join(p.SerializeToString() for p in encrypted)
    assert await codec.decode(encrypted) == originals
    # Decoding needs only the payload: the key it names, whatever the context.
    assert await EncryptionCodec(keys).decode(encrypted) == originals
    # Histories begun before encryption was on still decode.
    assert await codec.decode(originals) == originals


async def test_an_altered_payload_is_refused(keys: DataKeys) -> None:
    ann = await sealed(keys, journey("ann"), {"email": EMAIL})
    bob = await sealed(keys, journey("bob"), "anything")
    codec = EncryptionCodec(keys)
    flipped = Payload()
    flipped.CopyFrom(ann)
    flipped.data = ann.data[:-1] + bytes([ann.data[-1] ^ 1])
    moved = Payload()  # ann's ciphertext claiming bob's key
    moved.CopyFrom(ann)
    moved.metadata[KEY_ID] = bob.metadata[KEY_ID]
    for altered in (flipped, moved):
        with pytest.raises(PayloadDecryptionError, match="it was altered"):
            await codec.decode([altered])
    unknown = Payload()
    unknown.CopyFrom(ann)
    unknown.metadata[KEY_ID] = b"0" * 32
    with pytest.raises(PayloadDecryptionError, match="is gone"):
        await codec.decode([unknown])


async def test_each_customer_has_a_key_and_other_workflows_share_one(keys: DataKeys) -> None:
    async def key_of(context: SerializationContext | None) -> bytes:
        return (await sealed(keys, context, "x")).metadata[KEY_ID]

    ann, bob, shared = [(await keys.current(c)).id.encode() for c in ("ann", "bob", SHARED)]
    assert len({ann, bob, shared}) == 3
    # A journey's own payloads and its activities' are the customer's.
    assert await key_of(journey("ann")) == ann
    assert await key_of(activity_of(journey_id("ann"))) == ann
    assert await key_of(journey("bob")) == bob
    # Campaign fan-outs (and their Schedules), an activity of no workflow, no context.
    for other in (
        WorkflowSerializationContext(namespace="default", workflow_id="campaign-flash-sale"),
        activity_of("campaign-flash-sale"),
        activity_of(None),
        WorkflowSerializationContext(namespace="default", workflow_id=journey_id("")),
        None,
    ):
        assert await key_of(other) == shared
    assert owner_of(journey("a.b:c@d-1")) == "a.b:c@d-1"


async def test_data_keys_wrapped_by_an_old_master_key_still_open_after_a_rotation(
    store: Store, database_url: str
) -> None:
    october = DataKeys(database_url, master())
    before = await sealed(october, journey("ann"), {"email": EMAIL})
    await october.close()

    rotated = DataKeys(database_url, master("2026-11", **{"2026-10": OCTOBER, "2026-11": NOVEMBER}))
    [opened] = await EncryptionCodec(rotated).decode([before])
    assert json.loads(opened.data) == {"email": EMAIL}
    await sealed(rotated, journey("bob"), "new")
    await rotated.close()
    [ann], [bob] = await rows(store, "ann"), await rows(store, "bob")
    assert (ann.master_key_id, bob.master_key_id) == ("2026-10", "2026-11")
    assert len(ann.wrapped) == 12 + 32 + 16  # nonce, key, tag

    # Dropping a master key that still wraps a data key is refused by name.
    forgetful = DataKeys(database_url, master("2026-11", **{"2026-11": NOVEMBER}))
    with pytest.raises(LookupError, match="master key '2026-10' wraps a data key"):
        await EncryptionCodec(forgetful).decode([before])
    await forgetful.close()


async def test_processes_creating_a_customers_key_at_once_agree_on_one(
    store: Store, database_url: str
) -> None:
    processes = [DataKeys(database_url, master()) for _ in range(4)]
    found = await asyncio.gather(*(p.current("cara") for p in processes for _ in range(3)))
    assert len({key.id for key in found}) == 1
    assert [(row.generation, row.key_id) for row in await rows(store, "cara")] == [(1, found[0].id)]
    for process in processes:
        await process.close()


async def test_erasure_marks_the_keys_and_shredding_them_leaves_nothing_readable(
    store: Store, database_url: str, keys: DataKeys
) -> None:
    ann = await sealed(keys, journey("ann"), {"email": EMAIL})
    bob = await sealed(keys, journey("bob"), "still mine")
    # Another process, which has read ann's key, keeps it for its cache's TTL.
    elsewhere = DataKeys(database_url, master(), ttl=timedelta(seconds=0.5))
    await EncryptionCodec(elsewhere).decode([ann])

    erase = ErasureActivities(store).erase_customer
    await ActivityEnvironment().run(erase, EraseRequest(customer_id="ann", request_id="r1"))
    assert await keys.erased() == [("ann", "test-run")]  # ActivityEnvironment's run id
    # Until the run that erased her ends, her journey can still finish (and replay).
    assert await EncryptionCodec(keys).decode([ann])
    assert (await sealed(keys, journey("ann"), "the end")).metadata[KEY_ID] == ann.metadata[KEY_ID]

    assert await keys.shred("ann") == 1
    assert await keys.erased() == []
    newcomer = DataKeys(database_url, master())
    for codec in (EncryptionCodec(keys), EncryptionCodec(newcomer)):
        with pytest.raises(PayloadDecryptionError, match="is gone: its customer was erased"):
            await codec.decode([ann])
        assert await codec.decode([bob])
    await newcomer.close()
    # The window: the other process decrypts until its cache lets the key go.
    assert await EncryptionCodec(elsewhere).decode([ann])

    async def still_opens() -> bool:
        try:
            await EncryptionCodec(elsewhere).decode([ann])
        except PayloadDecryptionError:
            return False
        return True

    await eventually(still_opens, lambda opens: not opens, within=5)
    await elsewhere.close()
    # A customer who comes back later gets a key of their own, not the old one.
    assert (await sealed(keys, journey("ann"), "hello again")).metadata[KEY_ID] != ann.metadata[
        KEY_ID
    ]


async def test_failures_carry_their_message_encrypted(store: Store, database_url: str) -> None:
    settings = encryption_on(database_url)
    converter = data_converter(settings).with_context(journey("ann"))
    failure = Failure()
    await converter.encode_failure(ApplicationError(f"bounced: {EMAIL}", type="Bounce"), failure)
    assert failure.message == "Encoded failure"
    assert EMAIL.encode() not in failure.SerializeToString()
    assert failure.application_failure_info.type == "Bounce"  # in clear: retries need it
    decoded = await converter.decode_failure(failure)
    assert isinstance(decoded, ApplicationError)
    assert decoded.message == f"bounced: {EMAIL}"
    codec = converter.payload_codec
    assert isinstance(codec, EncryptionCodec)
    await codec.keys.close()


def encryption_on(database_url: str = "sqlite+aiosqlite:///unused.db") -> Settings:
    key = base64.b64encode(OCTOBER).decode()
    return Settings(
        database_url=database_url,
        encryption=EncryptionSettings(master_keys={"2026-10": key}, active_master_key="2026-10"),
    )


@pytest.mark.parametrize(
    ("environment", "error"),
    [
        (
            {"MASTER_KEYS": '{"k1": "c2hvcnQ="}', "ACTIVE_MASTER_KEY": "k1"},
            "MASTER_KEYS: Value error, key 'k1' is 5 bytes, not 32",
        ),
        (
            {"MASTER_KEYS": '{"k1": "not base64!"}', "ACTIVE_MASTER_KEY": "k1"},
            "MASTER_KEYS: Value error, key 'k1' is not base64",
        ),
        (
            {"MASTER_KEYS": json.dumps({"k 1": base64.b64encode(OCTOBER).decode()})},
            "MASTER_KEYS: Value error, key id 'k 1'",
        ),
        (
            {"MASTER_KEYS": json.dumps({"k1": base64.b64encode(OCTOBER).decode()})},
            "EQUATOR_ENCRYPTION__ACTIVE_MASTER_KEY=None names none of "
            "EQUATOR_ENCRYPTION__MASTER_KEYS (k1)",
        ),
        (
            {"ACTIVE_MASTER_KEY": "k1"},
            "EQUATOR_ENCRYPTION__ACTIVE_MASTER_KEY is set, EQUATOR_ENCRYPTION__MASTER_KEYS "
            "is empty",
        ),
    ],
)
def test_bad_encryption_settings_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], error: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(f"EQUATOR_ENCRYPTION__{name}", value)
    with pytest.raises(ValidationError) as refused:
        Settings()
    [problem] = refused.value.errors()
    assert error in f"{'__'.join(map(str, problem['loc'])).upper()}: {problem['msg']}"


def test_no_master_keys_means_no_encryption() -> None:
    assert not Settings().encryption.enabled
    assert data_converter(Settings()) is pydantic_data_converter


async def test_new_master_key_prints_settings_that_turn_encryption_on() -> None:
    code, out, _ = await equator("new-master-key", environment={})
    assert code == 0
    lines = dict(
        line.split("=", 1) for line in out.splitlines() if line.startswith("EQUATOR_ENCRYPTION")
    )
    keys = json.loads(lines["EQUATOR_ENCRYPTION__MASTER_KEYS"].strip("'"))
    settings = EncryptionSettings(
        master_keys=keys, active_master_key=lines["EQUATOR_ENCRYPTION__ACTIVE_MASTER_KEY"]
    )
    assert settings.enabled
    [key] = settings.key_bytes().values()
    assert len(key) == 32
