"""Temporal or the store goes down under the ingest API, or the API itself is saturated:
what is refused says when to retry, what is accepted is applied once, and nothing
accepted is lost."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlmodel import func, select

from activities.feed import NO_INGEST, outages_since
from activities.store import IngestHeartbeat, IngestReceipt, Store
from runtime.credentials import new_key
from runtime.temporal import connect
from runtime.worker import running_worker
from service.feed_watch import TEMPORAL_UNREACHABLE
from tests.conftest import postgres_database
from tests.ingest import Ingest, ingest_api, raw_event, settings_for
from tests.journeys import NO_HOLDOUTS
from tests.servers import cuttable, dev_server, eventually, free_port
from workflows.config import JourneyConfig


async def test_temporal_down_answers_503_and_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    persisted = tmp_path / "temporal.db"
    key = new_key()
    database = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    settings = settings_for(f"127.0.0.1:{port}", database, key, temporal_timeout=1)
    who = "outage-olive"
    before, during, in_batch = (raw_event(who) for _ in range(3))

    async with ingest_api(settings, key) as api:
        async with dev_server(port=port, db_file=persisted):
            assert (await api.post("/v1/events", before)).status_code == 202

        # Temporal is down; the API is not.
        refused = await api.post("/v1/events", during)
        assert refused.status_code == 503
        # Jittered about the configured 5 s, so that refused callers do not come back as one.
        assert 2 <= int(refused.headers["retry-after"]) <= 8
        assert "Temporal is unreachable" in refused.json()["detail"]
        batch = await api.post("/v1/events:batch", {"events": [before, in_batch]})
        assert batch.status_code == 503
        assert [r["status"] for r in batch.json()["results"]] == ["duplicate", "unavailable"]
        not_ready = await api.http.get("/readyz")
        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["store"] == "ok"
        assert await api.receipts(who) == 1

        async with dev_server(port=port, db_file=persisted):
            # Reachable again, but no worker works on the journeys yet: not ready.
            waiting = await eventually(
                lambda: api.http.get("/readyz"),
                lambda r: r.json()["checks"]["temporal"] == "ok",
            )
            assert waiting.status_code == 503
            assert waiting.json()["checks"]["workers"] == f"no worker polls {settings.task_queue}"
            # The caller resends what was refused: accepted now, as new.
            retried = await api.post("/v1/events", during)
            assert (retried.status_code, retried.json()["duplicate"]) == (202, False)
            batch = await api.post("/v1/events:batch", {"events": [before, in_batch]})
            assert [r["status"] for r in batch.json()["results"]] == ["duplicate", "accepted"]

            # A worker that starts only now finds all three waiting; each applies once.
            async with running_worker(await connect(settings), settings):
                await eventually(lambda: api.http.get("/readyz"), lambda r: r.status_code == 200)
                journey = await eventually(
                    lambda: api.http.get(f"/v1/customers/{who}/journey"),
                    lambda r: r.status_code == 200 and r.json()["state"]["events_applied"] >= 3,
                )
            state = journey.json()["state"]
            assert (state["events_applied"], state["duplicates_ignored"]) == (3, 0)
        # The refusals are on record as the feed's outage, for journeys about to flatline.
        [outage] = await outages_since(api.store, datetime.now(UTC) - timedelta(hours=1))
        assert outage.cause == TEMPORAL_UNREACHABLE
        assert outage.ended_at is not None
        assert outage.started_at < outage.ended_at


async def test_the_first_ingest_up_after_none_was_records_the_gap(tmp_path: Path) -> None:
    """No heartbeat for ten minutes: journeys hear of an outage not over; the first API
    process up records it as over, and beats."""
    key = new_key()
    database = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    store = Store(database)
    await store.migrate()
    ten_minutes_ago = datetime.now(UTC) - timedelta(minutes=10)
    async with store.transaction() as session:
        session.add(IngestHeartbeat(process_id="gone", seen_at=ten_minutes_ago))
    try:
        [ongoing] = await outages_since(store, ten_minutes_ago - timedelta(days=1))
        assert (ongoing.cause, ongoing.started_at, ongoing.ended_at) == (
            NO_INGEST,
            ten_minutes_ago,
            None,
        )
        async with dev_server() as env:
            settings = settings_for(env.client.service_client.config.target_host, database, key)
            async with ingest_api(settings, key):
                [gap] = await outages_since(store, ten_minutes_ago - timedelta(days=1))
                assert (gap.cause, gap.started_at) == (NO_INGEST, ten_minutes_ago)
                assert gap.ended_at is not None
                assert gap.ended_at > ten_minutes_ago
                async with store.reading() as session:
                    beats = (await session.exec(select(IngestHeartbeat))).all()
                assert len(beats) == 2
    finally:
        await store.close()


async def test_store_down_events_for_running_journeys_are_accepted_and_applied_once() -> None:
    """The store goes away under the API and the worker (a cut link to Postgres) for
    longer than a customer's silence window, while the customer keeps buying: each
    purchase is still accepted, a resend still answered as a duplicate, and once the
    store is back every receipt is written, every purchase applied once, and no silence
    ladder started. A new customer waits: only the store can say they were not erased."""
    key = new_key()
    async with dev_server() as env, postgres_database() as direct:
        url = make_url(direct)
        async with cuttable(url.host or "127.0.0.1", url.port or 5432) as link:
            proxied = url.set(host="127.0.0.1", port=link.port).render_as_string(
                hide_password=False
            )
            settings = settings_for(env.client.service_client.config.target_host, proxied, key)
            settings.journey = SECONDS_OF_SILENCE
            omar, nina = "outage-omar", "outage-nina"
            bought: list[dict[str, Any]] = []
            async with ingest_api(settings, key) as api, running_worker(env.client, settings):

                async def buying() -> None:
                    while True:
                        event = raw_event(omar)
                        accepted = await api.post("/v1/events", event)
                        assert (accepted.status_code, accepted.json()["duplicate"]) == (202, False)
                        bought.append(event)
                        await asyncio.sleep(2)

                buyer = asyncio.create_task(buying())
                await applied(api, omar, 1)
                await link.cut()
                await asyncio.sleep(SECONDS_OF_SILENCE.silence_default.total_seconds() + 2)
                during = bought[-1]
                resent = await api.post("/v1/events", during)
                assert (resent.status_code, resent.json()["duplicate"]) == (202, True)
                refused = await api.post("/v1/events", raw_event(nina))
                assert refused.status_code == 503
                assert 2 <= int(refused.headers["retry-after"]) <= 8
                assert "no running journey" in refused.json()["detail"]
                degraded = await api.http.get("/readyz")
                assert (degraded.status_code, degraded.json()["status"]) == (200, "degraded")
                assert degraded.json()["checks"]["store"].startswith("unreachable")
                assert int(degraded.json()["checks"]["receipts_held"]) >= 5

                await link.restore()
                # Ready once the store answers and the held receipts are written.
                await eventually(
                    lambda: api.http.get("/readyz"),
                    lambda r: (
                        r.json()["status"] == "ready" and "receipts_held" not in r.json()["checks"]
                    ),
                    60,
                )
                buyer.cancel()
                direct_store = Store(direct)
                try:
                    written = await eventually(
                        lambda: receipts(direct_store, omar), lambda n: n == len(bought)
                    )
                finally:
                    await direct_store.close()
                assert written == len(bought)
                view = await applied(api, omar, len(bought))
                state = view["state"]
                assert (state["events_applied"], state["duplicates_ignored"]) == (len(bought), 0)
                started = [e for e in state["timeline"] if e["kind"] == "ladder_started"]
                assert started == []
                again = await api.post("/v1/events", during)
                assert (again.status_code, again.json()["duplicate"]) == (202, True)
                assert (await api.post("/v1/events", raw_event(nina))).status_code == 202


# A silence window of seconds: the outage above outlasts it.
SECONDS_OF_SILENCE = JourneyConfig(
    holdouts=NO_HOLDOUTS,
    silence_min=timedelta(seconds=8),
    silence_default=timedelta(seconds=10),
    silence_max=timedelta(seconds=20),
)


async def applied(api: Ingest, customer_id: str, events: int) -> dict[str, Any]:
    """The journey's view once it has applied ``events``."""
    answer = await eventually(
        lambda: api.http.get(f"/v1/customers/{customer_id}/journey"),
        lambda r: (
            r.status_code == 200
            and r.json()["freshness"] == "live"
            and r.json()["state"]["events_applied"] >= events
        ),
        60,
    )
    view: dict[str, Any] = answer.json()
    return view


async def receipts(store: Store, customer_id: str) -> int:
    async with store.reading() as session:
        query = select(func.count()).where(IngestReceipt.customer_id == customer_id)
        return (await session.exec(query)).one()


async def test_a_saturated_api_answers_429_at_once(tmp_path: Path) -> None:
    """One request in flight (its body half sent) fills an API that takes one at a time:
    the next is answered 429 with a jittered Retry-After within the budget, not queued;
    health checks still pass; the first completes once its body arrives."""
    key = new_key()
    database = f"sqlite+aiosqlite:///{tmp_path / 'e.db'}"
    async with dev_server() as env:
        address = env.client.service_client.config.target_host
        settings = settings_for(address, database, key, max_in_flight=1, in_flight_budget=0.05)
        async with ingest_api(settings, key) as api:
            body = json.dumps(raw_event("busy-bea")).encode()
            host, port = api.url.removeprefix("http://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            head = (
                f"POST /v1/events HTTP/1.1\r\nHost: {host}\r\n"
                f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            )
            writer.write(head.encode() + body[:10])
            await writer.drain()
            # The held request has its slot once the API answers others with 429.
            refused = await eventually(
                lambda: api.post("/v1/events", raw_event("busy-bea")),
                lambda r: r.status_code == 429,
            )
            assert 2 <= int(refused.headers["retry-after"]) <= 8
            assert refused.json()["title"] == "Too many requests"
            assert (await api.http.get("/healthz")).status_code == 200

            writer.write(body[10:])
            await writer.drain()
            status_line = await reader.readline()
            assert status_line.startswith(b"HTTP/1.1 202")
            writer.close()
            await eventually(
                lambda: api.post("/v1/events", raw_event("busy-bea")),
                lambda r: r.status_code == 202,
            )


async def test_the_journey_view_answers_from_what_was_published_while_no_worker_runs() -> None:
    key = new_key()
    async with dev_server() as env, postgres_database() as database:
        settings = settings_for(
            env.client.service_client.config.target_host,
            database,
            key,
            journey_query_timeout=0.5,
        )
        quinn = "quiet-quinn"
        async with ingest_api(settings, key) as api:
            async with running_worker(env.client, settings):
                for _ in range(2):
                    assert (await api.post("/v1/events", raw_event(quinn))).status_code == 202
                live = await applied(api, quinn, 2)
                assert live["freshness"] == "live"

            # No worker: the query goes unanswered, the published view answers.
            answer = await api.http.get(f"/v1/customers/{quinn}/journey")
            assert answer.status_code == 200
            published = answer.json()
            assert published["freshness"] == "published"
            assert published["status"] == "running"
            standing = published["standing"]
            assert standing["line_position"] == live["state"]["line_position"]
            assert standing["lifetime_value"] == 39.98
            assert (standing["ladder"], standing["ladder_step"]) == ("none", 0)
            assert published["customer"]["order_count"] == 2
            assert published["customer"]["customer_id"] == quinn

            # An event arrives that no worker takes: the view says since when it waits.
            assert (await api.post("/v1/events", raw_event(quinn))).status_code == 202
            waiting = (await api.http.get(f"/v1/customers/{quinn}/journey")).json()
            assert waiting["freshness"] == "published"
            assert waiting["waiting_since"] is not None
            assert waiting["customer"]["order_count"] == 2
            nobody = await api.http.get("/v1/customers/nobody-nell/journey")
            assert nobody.status_code == 404

            async with running_worker(env.client, settings):
                again = await applied(api, quinn, 3)
                assert again["freshness"] == "live"
