"""The codec server over real HTTP, on a real SQLite store: payloads decrypt to what was
sealed, an erased customer's stay encrypted while the rest decode, `/encode` seals under
the shared key, keys and their scope are checked, and only the UI's origins pass CORS."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import WorkflowSerializationContext

from activities.data_keys import SHARED, new_master_key
from runtime.codec import ENCODING, KEY_ID, EncryptionCodec, data_converter
from runtime.credentials import Scope, Source, hash_key
from runtime.settings import CodecServerSettings, EncryptionSettings, Settings
from service.codec_server import running_codec_server
from tests.servers import equator
from workflows.journey import journey_id

OPS_KEY = "eqk_test-ops"  # payloads:read
TILL_KEY = "eqk_test-till"  # events:write
UI = "http://localhost:8233"


@dataclass
class Codec:
    http: httpx.AsyncClient
    codec: EncryptionCodec  # another process's, on the same store and master key

    async def sealed(self, customer_id: str, value: Any) -> Payload:
        context = WorkflowSerializationContext("default", journey_id(customer_id))
        [sealed] = await self.codec.with_context(context).encode([plain(value)])
        return sealed

    async def post(self, path: str, payloads: list[Payload], key: str = OPS_KEY) -> httpx.Response:
        body = {"payloads": [json_format.MessageToDict(p) for p in payloads]}
        headers = {"Authorization": f"Bearer {key}", "X-Namespace": "default", "Origin": UI}
        return await self.http.post(path, json=body, headers=headers)


def plain(value: Any) -> Payload:
    return pydantic_data_converter.payload_converter.to_payloads([value])[0]


def answered(response: httpx.Response) -> list[Payload]:
    assert response.status_code == 200, response.text
    return [json_format.ParseDict(p, Payload()) for p in response.json()["payloads"]]


def settings_for(tmp_path: Path) -> Settings:
    master = base64.b64encode(new_master_key()).decode()
    sources = (
        Source(name="ops", key_hashes=(hash_key(OPS_KEY),), scopes={Scope.PAYLOADS_READ}),
        Source(name="till", key_hashes=(hash_key(TILL_KEY),), scopes={Scope.EVENTS_WRITE}),
    )
    return Settings.model_validate(
        {
            "database_url": f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}",
            "encryption": EncryptionSettings.model_validate(
                {"master_keys": {"k1": master}, "active_master_key": "k1"}
            ),
            "ingest": {"sources": sources},
            "codec_server": CodecServerSettings(port=0),
        }
    )


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Codec]:
    settings = settings_for(tmp_path)
    codec = data_converter(settings).payload_codec
    assert isinstance(codec, EncryptionCodec)
    async with (
        running_codec_server(settings) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        yield Codec(http, codec)
    await codec.keys.close()


async def test_a_payload_decodes_to_what_was_sealed(server: Codec) -> None:
    original = plain({"email": "ann.secret@example.com"})
    sealed = await server.sealed("ann", {"email": "ann.secret@example.com"})
    assert sealed.metadata["encoding"] == ENCODING
    response = await server.post("/decode", [sealed, original])
    # A payload written before encryption was on passes through.
    assert answered(response) == [original, original]
    assert response.headers["access-control-allow-origin"] == UI


async def test_an_erased_customers_payload_stays_encrypted_and_the_others_decode(
    server: Codec,
) -> None:
    ann = await server.sealed("ann", "ann's secret")
    bob = await server.sealed("bob", "bob's")
    assert await server.codec.keys.shred("ann") == 1  # the shredder's step after erasure
    assert answered(await server.post("/decode", [bob, ann, bob])) == [
        plain("bob's"),
        ann,
        plain("bob's"),
    ]


async def test_encode_seals_under_the_shared_key(server: Codec) -> None:
    typed = plain({"reason": "typed in the UI"})
    [sealed] = answered(await server.post("/encode", [typed]))
    shared = await server.codec.keys.current(SHARED)
    assert dict(sealed.metadata) == {"encoding": ENCODING, KEY_ID: shared.id.encode()}
    assert await server.codec.decode([sealed]) == [typed]


async def test_a_caller_without_a_key_or_the_scope_is_refused(server: Codec) -> None:
    for headers in ({}, {"Authorization": "Bearer eqk_unknown"}):
        response = await server.http.post("/decode", json={"payloads": []}, headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
    response = await server.post("/decode", [], key=TILL_KEY)
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == "the API key of source 'till' lacks the scope payloads:read"
    # Refusals carry CORS headers, or the UI would see a network error, not the status.
    assert response.headers["access-control-allow-origin"] == UI


async def test_only_the_uis_origins_pass_the_preflight(server: Codec) -> None:
    def preflight(origin: str) -> dict[str, str]:
        return {
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
        }

    for ui in (UI, "http://127.0.0.1:8233"):
        allowed = await server.http.options("/decode", headers=preflight(ui))
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == ui
        assert allowed.headers["access-control-allow-credentials"] == "true"
        assert "POST" in allowed.headers["access-control-allow-methods"]
    refused = await server.http.options("/decode", headers=preflight("https://evil.example"))
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def test_the_command_refuses_to_start_without_encryption(tmp_path: Path) -> None:
    code, _, err = await equator(
        "codec-server",
        environment={
            "EQUATOR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}",
            "EQUATOR_INGEST__SOURCES": '[{"name": "ops", "key_hashes": ["'
            + hash_key(OPS_KEY)
            + '"], "scopes": ["payloads:read"]}]',
            "EQUATOR_ENCRYPTION__MASTER_KEYS": "{}",
        },
    )
    assert code == 1
    assert "the codec server needs payload encryption" in err
