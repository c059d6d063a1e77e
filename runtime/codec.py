"""Payloads encrypted before they reach Temporal: AES-256-GCM under the customer's own data
key (``activities/data_keys.py``), so that erasing the customer (deleting their keys) makes
their journey's history, which Temporal keeps until retention, unreadable.

Each payload becomes ``encoding: binary/encrypted`` with the id of its key in
``encryption-key-id`` (opaque and random: the customer is named only by the key's row in
the store, which erasure deletes), a random 96-bit nonce, and the original ``Payload``
(metadata and data) sealed with the key id as associated data. Decoding needs only the
payload: the key it names, wherever it is read. Payloads that are not encrypted pass
through, so that histories begun before encryption was turned on still replay.

Whose key (``with_context``, temporalio 1.35): the SDK binds the codec to a
``WorkflowSerializationContext`` or ``ActivitySerializationContext`` and both carry the
workflow id; a journey's (``customer-<id>``) means that customer's key, anything else
(campaign fan-outs, their Schedules, a call with no context) the one shared key (owner
``"*"``). What the context reaches in 1.35:

- From a client (the ingest API, the fan-out's signals, the CLI): the workflow's input and
  the start signal's arguments at signal-with-start, the start's static summary, signals,
  queries (arguments and result), updates (arguments and result), each with the target
  workflow's id (``client/_impl.py``).
- In a worker, workflow side: every payload of an activation is decoded and every payload
  of its completion encoded (``worker/_workflow.py``, ``bridge/worker.py``), under the
  workflow's context or, for an activity's input and result, the activity's, which names
  the same workflow (``_workflow_instance.py: get_serialization_context``). That takes in
  signals, updates, queries, activity and local activity inputs and results (a local
  activity's marker records its encrypted result), continue-as-new's input (the journey's
  whole state), the workflow's result, query and update results, and the user metadata of
  commands: activity and timer summaries ("step 2 of 4 … (pct10, $2.00)") are encrypted.
- In a worker, activity side (``worker/_activity.py``): the input, result, heartbeat
  details and failure details, under the activity's context.
- Failures: a failure's message and stack trace are plain text in Temporal unless the
  failure converter moves them into its encoded attributes, a payload the codec then
  encrypts. ``data_converter`` turns that on: a message can quote personal values (a
  database error names its parameters). A failure's type and retry flags stay plain.

Not encrypted, by Temporal's design: search attributes (the SDK never passes them to a
codec: ``workflows/search.py`` lists them; the README says what each holds), workflow and
run ids (``customer-<id>``), type, signal, query and update names, activity ids, timers'
ids, task queues, the markers' own metadata (patch ids; a local activity's type, attempt
and times), and headers (the tracing context: the SDK's default leaves headers out of the
codec). Current details (``workflow.set_current_details``) are not in the history: the UI
asks the worker for them with a query, whose answer is encrypted.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Sequence
from typing import Self

from cryptography.exceptions import InvalidTag
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

from activities.data_keys import SHARED, DataKeys, Key, LocalMasterKeys
from runtime.settings import Settings
from workflows.journey import journey_id

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
_NONCE = 12
_JOURNEY = journey_id("")


class PayloadDecryptionError(Exception):
    """A payload that cannot be decrypted: its key is gone (the customer was erased) or
    it was altered."""


def owner_of(context: SerializationContext | None) -> str:
    """Whose key a payload goes under: the customer of a journey's workflow, for the
    journey's own payloads and its activities' alike; the shared key's owner otherwise."""
    workflow_id = (
        context.workflow_id
        if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext)
        else None
    )
    if workflow_id and workflow_id.startswith(_JOURNEY) and len(workflow_id) > len(_JOURNEY):
        return workflow_id.removeprefix(_JOURNEY)
    return SHARED


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """AES-256-GCM under the data key of the customer whose journey the payloads belong
    to (see the module's docstring). Unbound, it encrypts under the shared key.

    A payload whose key has been shredded raises ``PayloadDecryptionError``. A worker
    decodes an erased customer's payloads only while their journey's last run is still
    ending, and the keys are shredded only after it has ended (``activities/data_keys.py``
    says why): what fails afterwards is a query or a replay of an erased journey, as it
    should, and whoever asks sees which key is gone."""

    def __init__(self, keys: DataKeys, owner: str = SHARED) -> None:
        self.keys = keys
        self._owner = owner

    def with_context(self, context: SerializationContext) -> Self:
        return type(self)(self.keys, owner_of(context))

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key = await self.keys.current(self._owner)
        return [_sealed(key, payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [await self._opened(payload) for payload in payloads]

    async def _opened(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata[KEY_ID].decode()
        key = await self.keys.find(key_id)
        if key is None:
            raise PayloadDecryptionError(
                f"payload key {key_id} is gone: its customer was erased (or the key was "
                "never in this store)"
            )
        nonce, sealed = payload.data[:_NONCE], payload.data[_NONCE:]
        try:
            return Payload.FromString(key.cipher.decrypt(nonce, sealed, key_id.encode()))
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload under key {key_id} fails authentication: it was altered"
            ) from None


def _sealed(key: Key, payload: Payload) -> Payload:
    nonce = secrets.token_bytes(_NONCE)
    return Payload(
        metadata={"encoding": ENCODING, KEY_ID: key.id.encode()},
        data=nonce + key.cipher.encrypt(nonce, payload.SerializeToString(), key.id.encode()),
    )


def data_converter(settings: Settings) -> DataConverter:
    """The data converter of every client and worker of the project: pydantic; with
    master keys configured, the encryption codec too, its data keys in the store at
    ``EQUATOR_DATABASE_URL``, and failures whose message and stack trace are encrypted."""
    encryption = settings.encryption
    if not encryption.enabled:
        return pydantic_data_converter
    assert encryption.active_master_key is not None, "checked with the settings"
    master = LocalMasterKeys(encryption.key_bytes(), encryption.active_master_key)
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(
            DataKeys(settings.database_url, master, encryption.key_cache_ttl)
        ),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
