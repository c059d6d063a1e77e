"""Helpers for ingest API tests: a real worker and the real API served over real HTTP."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr
from sqlmodel import func, select

from activities.signatures import sign
from activities.store import IngestReceipt, LedgerEvent, Store
from runtime.credentials import Scope, Source, hash_key
from runtime.settings import IngestSettings, Settings
from service.serving import running_api
from starter.client import event_body
from tests.journeys import NO_HOLDOUTS
from workflows.config import JourneyConfig

WEBHOOK_SECRET = "whsec-test"
# Keys of sources with scopes beside the test's own key, whose `pos` source predates
# scopes (and so keeps what every key could do before them).
TILL_KEY = "eqk_test-till"  # events:write
REPORTING_KEY = "eqk_test-reporting"  # reports:read
OPS_KEY = "eqk_test-ops"  # operate


def raw_event(customer_id: str, type: str = "purchase", **overrides: Any) -> dict[str, Any]:
    """A valid event as a source sends it, with ``overrides`` of its top-level fields."""
    properties = {"amount": "19.99", "category": "shoes"} if type == "purchase" else {}
    return event_body(customer_id, type, properties) | overrides


@dataclass
class Ingest:
    url: str
    key: str
    http: httpx.AsyncClient
    settings: Settings
    store: Store

    async def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return await self.http.post(path, json=body, headers=headers)

    async def post_signed(self, source: str, body: Any, secret: str = WEBHOOK_SECRET,
                          at: float | None = None) -> httpx.Response:  # fmt: skip
        raw = json.dumps(body).encode()
        signature = sign(secret, int(at if at is not None else time.time()), raw)
        return await self.http.post(
            f"/v1/webhooks/{source}/email",
            content=raw,
            headers={"Equator-Signature": signature, "Authorization": ""},
        )

    async def receipts(self, customer_id: str) -> int:
        return await self._count(IngestReceipt, IngestReceipt.customer_id == customer_id)

    async def ledger(self, customer_id: str) -> list[LedgerEvent]:
        async with self.store.transaction() as session:
            rows = await session.exec(
                select(LedgerEvent).where(LedgerEvent.customer_id == customer_id)
            )
            return list(rows.all())

    async def _count(self, table: type, *where: Any) -> int:
        async with self.store.transaction() as session:
            return (await session.exec(select(func.count()).select_from(table).where(*where))).one()


def settings_for(temporal_address: str, database_url: str, key: str, **ingest: Any) -> Settings:
    sources = (
        Source(
            name="pos", key_hashes=(hash_key(key),), webhook_secrets=(SecretStr(WEBHOOK_SECRET),)
        ),
        Source(name="mailer"),
        Source(name="till", key_hashes=(hash_key(TILL_KEY),), scopes={Scope.EVENTS_WRITE}),
        Source(
            name="reporting", key_hashes=(hash_key(REPORTING_KEY),), scopes={Scope.REPORTS_READ}
        ),
        Source(name="ops", key_hashes=(hash_key(OPS_KEY),), scopes={Scope.OPERATE}),
    )
    return Settings(
        temporal_address=temporal_address,
        task_queue=f"api-{uuid.uuid4().hex[:8]}",
        database_url=database_url,
        journey=JourneyConfig(holdouts=NO_HOLDOUTS),
        ingest=IngestSettings(port=0, sources=sources, **ingest),
    )


@asynccontextmanager
async def ingest_api(settings: Settings, key: str) -> AsyncIterator[Ingest]:
    """The API on the settings' Temporal and store, and an HTTP client holding ``key``."""
    store = Store(settings.database_url)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with (
            running_api(settings) as url,
            httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as http,
        ):
            yield Ingest(url, key, http, settings, store)
    finally:
        await store.close()
