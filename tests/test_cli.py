"""The `equator` CLI end to end: real processes talking to the real ingest API."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from temporalio.testing import WorkflowEnvironment

from activities import audit
from activities.feed import Feed
from activities.store import Store
from runtime.credentials import Scope, Source, hash_key, source_for_key
from runtime.worker import running_worker
from tests.ingest import Ingest, ingest_api, settings_for
from tests.servers import equator as run_equator
from tests.servers import free_port
from workflows.contracts import AuditRecord, Via
from workflows.journey import journey_id


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Ingest]:
    key = "eqk_cli-test-key"
    database = f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}"
    settings = settings_for(dev_env.client.service_client.config.target_host, database, key)
    async with running_worker(dev_env.client, settings), ingest_api(settings, key) as api:
        yield api


async def equator(api_url: str, *args: str, key: str = "eqk_cli-test-key") -> tuple[int, str, str]:
    """The CLI, pointed at the test's API with the test's key."""
    environment = {"EQUATOR_API_URL": api_url, "EQUATOR_API_KEY": key}
    return await run_equator(*args, environment=environment)


def customer() -> str:
    return f"cli-{uuid.uuid4().hex[:6]}"


async def test_send_then_show(api: Ingest) -> None:
    who = customer()
    code, out, _ = await equator(api.url, "send", who, "purchase", "amount=42.5", "category=shoes")
    assert code == 0
    assert f"to {journey_id(who)}" in out

    for _ in range(100):
        code, out, _ = await equator(api.url, "show", who, "--json")
        if code == 0 and json.loads(out)["state"]["events_applied"] == 1:
            break
        await asyncio.sleep(0.1)
    state = json.loads(out)["state"]
    assert state["line_position"] == "above"
    assert state["profile"]["lifetime_value"] == "42.5"
    code, out, _ = await equator(api.url, "show", who)
    assert "is above the line" in out  # piped: plain text
    assert "purchase: amount 42.5, category shoes (from pos)" in out


async def test_a_resend_is_reported_as_a_duplicate(api: Ingest) -> None:
    who = customer()
    args = ("send", who, "app_browse", "--event-id", "e-1", "--at", "2026-11-01T10:00:00Z")
    assert (await equator(api.url, *args))[0] == 0
    code, out, _ = await equator(api.url, *args)
    assert code == 0
    assert "duplicate: nothing changed" in out


async def test_refusals_are_explained_with_their_fields(api: Ingest) -> None:
    code, _, err = await equator(api.url, "send", "c", "purchase", "amount=cheap")
    assert code == 2
    assert "properties.amount: Input should be a valid decimal" in err

    code, _, err = await equator(api.url, "show", customer())
    assert code == 1
    assert "404 Not found: no journey for" in err

    code, _, err = await equator(api.url, "send", "c", "purchase", "amount=1", key="eqk_wrong")
    assert code == 1
    assert "401 Unauthorized" in err


async def test_a_closed_journey_is_not_restarted_blank(
    api: Ingest, dev_env: WorkflowEnvironment
) -> None:
    who = customer()
    assert (await equator(api.url, "send", who, "app_browse"))[0] == 0
    await dev_env.client.get_workflow_handle(journey_id(who)).terminate("operator")

    code, _, err = await equator(api.url, "send", who, "purchase", "amount=5")
    assert code == 1
    assert "has ended; it is not restarted implicitly" in err


async def test_no_api_running_is_said_plainly() -> None:
    code, _, err = await equator(f"http://127.0.0.1:{free_port()}", "show", "anyone")
    assert code == 1
    assert "cannot reach the ingest API" in err


async def test_new_key_prints_a_key_and_the_entry_to_configure_with_its_scopes() -> None:
    code, out, _ = await equator("http://unused", "new-key", "pos")
    assert code == 0
    key = out.split(": ", 1)[1].splitlines()[0]
    entry = json.loads(out.splitlines()[1].split(": ", 1)[1])
    assert entry["key_hashes"] == [hash_key(key)]
    # A source sends events unless told otherwise.
    assert entry["scopes"] == ["events:write"]
    source = source_for_key([Source.model_validate(entry)], key)
    assert source is not None
    assert source.granted == {Scope.EVENTS_WRITE}

    code, out, _ = await equator(
        "http://unused", "new-key", "crm", "--scope", "reports:read", "--scope", "journeys:read"
    )
    assert code == 0
    entry = json.loads(out.splitlines()[1].split(": ", 1)[1])
    assert entry["scopes"] == ["journeys:read", "reports:read"]

    code, _, err = await equator("http://unused", "new-key", "crm", "--scope", "reports")
    assert code == 2
    assert "invalid choice: 'reports'" in err


async def test_a_bad_setting_is_named_as_it_was_set() -> None:
    code, _, err = await run_equator("worker", environment={"EQUATOR_INGEST__PORT": "eighty"})
    assert code == 2
    assert err.startswith("equator: EQUATOR_INGEST__PORT: Input should be a valid integer")
    assert "Traceback" not in err


async def test_ops_record_a_feed_outage_and_list_the_outages(tmp_path: Path) -> None:
    environment = {"EQUATOR_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}"}
    code, _, err = await run_equator(
        "feed", "outage", "--from", "2026-11-29T10:00:00Z", "--to", "2026-11-29T09:00:00Z",
        "--cause", "till export failed", environment=environment,
    )  # fmt: skip
    assert code == 1
    assert err == "equator: --to must come after --from\n"
    code, out, _ = await run_equator(
        "feed", "outage", "--from", "2026-11-29T10:00:00Z", "--to", "2026-11-29T16:30:00Z",
        "--cause", "till export failed", environment=environment,
    )  # fmt: skip
    assert code == 0
    assert out == "recorded: 2026-11-29T10:00:00Z to 2026-11-29T16:30:00Z  till export failed\n"
    store = Store(environment["EQUATOR_DATABASE_URL"])
    await Feed(store, "ops").began(datetime(2026, 11, 30, tzinfo=UTC), "webhooks off")
    await store.close()
    code, out, _ = await run_equator("feed", "outages", environment=environment)
    assert out.splitlines() == [
        "2026-11-30T00:00:00Z to not over  webhooks off",
        "2026-11-29T10:00:00Z to 2026-11-29T16:30:00Z  till export failed",
    ]


async def test_the_audit_is_printed_for_a_customer_erased_or_not(tmp_path: Path) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'equator.db'}"
    store = Store(database_url)
    await store.migrate()
    at = datetime(2026, 11, 30, 9, 15, tzinfo=UTC)
    entry = AuditRecord(
        entry_key="erase-1:erased",
        at=at,
        actor="pos",
        via=Via.API,
        action="customer.erase",
        customer_id="gone-gwen",
        request_id="erase-1",
        outcome="erased",
        detail="12 rows deleted, 1 engagements anonymized",
    )
    other = entry.model_copy(update={"entry_key": "erase-2:erased", "customer_id": "stays-sam"})
    await audit.record(store, [entry, other])
    await store.close()

    environment = {"EQUATOR_DATABASE_URL": database_url}
    code, out, _ = await run_equator("audit", "--customer", "gone-gwen", environment=environment)
    assert code == 0
    assert out.splitlines() == [
        "2026-11-30T09:15:00Z  customer.erase         erased    pos via api  erase-1  "
        "12 rows deleted, 1 engagements anonymized"
    ]
    code, out, _ = await run_equator("audit", "--json", environment=environment)
    assert code == 0
    printed = [json.loads(line) for line in out.splitlines()]
    assert [line["request_id"] for line in printed] == ["erase-1", "erase-1"]
    assert "gone-gwen" not in out  # by digest only
