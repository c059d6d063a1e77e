"""Temporal or the store goes down under the ingest API: 503 with Retry-After, never a
202, and nothing accepted is lost once Temporal is back."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from runtime.credentials import new_key
from runtime.temporal import connect
from runtime.worker import running_worker
from tests.conftest import POSTGRES_ADMIN_DSN, postgres_database
from tests.ingest import ingest_api, raw_event, settings_for
from tests.servers import dev_server, eventually, free_port


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


async def test_store_down_answers_503_and_acknowledges_nothing() -> None:
    key = new_key()
    async with dev_server() as env, postgres_database() as database:
        settings = settings_for(env.client.service_client.config.target_host, database, key)
        async with ingest_api(settings, key) as api:
            assert (await api.post("/v1/events", raw_event("store-stan"))).status_code == 202

            admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
            name = database.rsplit("/", 1)[1]
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            await admin.close()

            refused = await api.post("/v1/events", raw_event("store-stan"))
            assert refused.status_code == 503
            assert 2 <= int(refused.headers["retry-after"]) <= 8
            assert "event store is unreachable" in refused.json()["detail"]
            not_ready = await api.http.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["checks"]["store"].startswith("unreachable")
            assert not_ready.json()["checks"]["temporal"] == "ok"
