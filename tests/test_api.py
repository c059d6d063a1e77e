"""The ingest API over real HTTP, against a real dev server, worker and database."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.ingest import REPORTING_KEY, TILL_KEY, Ingest, raw_event
from tests.reporting import population
from tests.servers import eventually
from workflows.journey import journey_id


def customer() -> str:
    return f"api-{uuid.uuid4().hex[:8]}"


async def state_once(api: Ingest, customer_id: str, applied: int) -> dict[str, Any]:
    """The journey's state, through the API, once it has applied ``applied`` events."""

    async def probe() -> httpx.Response:
        return await api.http.get(f"/v1/customers/{customer_id}/journey")

    response = await eventually(
        probe,
        lambda r: r.status_code == 200 and r.json()["state"]["events_applied"] >= applied,
    )
    state: dict[str, Any] = response.json()["state"]
    return state


async def test_an_event_is_accepted_and_applied_with_its_source(api: Ingest) -> None:
    who = customer()
    event = raw_event(who)
    response = await api.post("/v1/events", event)

    assert response.status_code == 202
    assert response.json() == {
        "event_id": event["event_id"],
        "journey_id": journey_id(who),
        "duplicate": False,
    }
    state = await state_once(api, who, 1)
    assert state["line_position"] == "above"
    assert state["profile"]["lifetime_value"] == "19.99"
    [applied] = [entry for entry in state["timeline"] if entry["kind"] == "event"]
    assert applied["summary"].endswith("(from pos)")
    [row] = await api.ledger(who)
    assert (row.event_id, row.source) == (event["event_id"], "pos")


async def test_a_resend_is_a_duplicate_that_changes_nothing(api: Ingest) -> None:
    who = customer()
    event = raw_event(who)
    assert (await api.post("/v1/events", event)).json()["duplicate"] is False
    await state_once(api, who, 1)

    # The same id with other content (a source re-stamping its retry) is still the same event.
    for resend in (event, event | {"occurred_at": "2026-01-01T00:00:00+01:00"}):
        response = await api.post("/v1/events", resend)
        assert response.status_code == 202
        assert response.json()["duplicate"] is True

    # A later event proves the journey has caught up; the resends never reached it.
    await api.post("/v1/events", raw_event(who, "app_browse"))
    state = await state_once(api, who, 2)
    assert state["events_applied"] == 2
    assert state["duplicates_ignored"] == 0
    assert len(await api.ledger(who)) == 2
    assert await api.receipts(who) == 2


def _bad(**changes: Any) -> dict[str, Any]:
    event = raw_event("bad-input-customer")
    for path, value in changes.items():
        target, *rest = path.split("__")
        if rest:
            event[target] = {**event[target], rest[0]: value}
        elif value is None:
            del event[target]
        else:
            event[target] = value
    return event


@pytest.mark.parametrize(
    ("body", "status", "field", "reason"),
    [
        (b'{"event_id": "e1", "customer_id"', 400, None, "not JSON"),
        (_bad(type="teleport"), 422, "type", "must be one of: purchase"),
        (_bad(event_id=None), 422, "event_id", "Field required"),
        (_bad(customer_id=""), 422, "customer_id", "at least 1 character"),
        (_bad(customer_id="a b"), 422, "customer_id", "should match pattern"),
        (_bad(properties__amount="cheap"), 422, "properties.amount", "valid decimal"),
        (_bad(properties__amount=-5), 422, "properties.amount", "greater than or equal to 0"),
        (_bad(properties__colour="red"), 422, "properties.colour", "Extra inputs"),
        (_bad(occurred_at="2026-11-23T10:00:00"), 422, "occurred_at", "timezone"),
        (_bad(occurred_at="2999-01-01T00:00:00Z"), 422, "occurred_at", "in the future"),
        (_bad(occurred_at="0001-01-01T00:00:00+05:00"), 422, "occurred_at", "between 1970"),
        (_bad(source="ecommerce"), 422, "source", "the source of your API key"),
        (["not", "an", "object"], 422, "event", "valid dictionary"),
    ],
)
async def test_bad_input_is_refused_naming_field_and_reason(
    api: Ingest, body: Any, status: int, field: str | None, reason: str
) -> None:
    content = body if isinstance(body, bytes) else None
    response = await api.http.post("/v1/events", content=content, json=None if content else body)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert reason in problem["detail"]
    if field is not None:
        assert any(e["field"] == field and reason in e["reason"] for e in problem["errors"])
    # Nothing reached a journey or the receipts.
    assert (await api.http.get("/v1/customers/bad-input-customer/journey")).status_code == 404
    assert await api.receipts("bad-input-customer") == 0


async def test_unknown_query_parameters_are_refused(api: Ingest) -> None:
    who = customer()
    response = await api.http.post(
        "/v1/events", json=raw_event(who), params={"customer_retuned": "true"}
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "query.customer_retuned", "reason": "unknown query parameter"}
    ]
    assert await api.receipts(who) == 0


async def test_oversized_bodies_get_413_declared_or_streamed(api: Ingest) -> None:
    big = b'{"events": [' + b" " * 2_000_000 + b"]}"
    declared = await api.http.post("/v1/events", content=big)
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 64_000

    streamed = await api.http.post("/v1/events:batch", content=chunks())
    assert streamed.status_code == 413
    assert "at most 1048576 bytes" in streamed.json()["detail"]


@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-key", "Basic cG9zOnNlY3JldA==", "Bearer"],
)
async def test_wrong_or_missing_credentials_get_401_and_record_nothing(
    api: Ingest, authorization: str | None
) -> None:
    who = customer()
    headers = {"Authorization": authorization} if authorization else {}
    async with httpx.AsyncClient(base_url=api.url, headers=headers) as stranger:
        for path, body in [
            ("/v1/events", raw_event(who)),
            ("/v1/events:batch", {"events": [raw_event(who)]}),
        ]:
            response = await stranger.post(path, json=body)
            assert response.status_code == 401
            assert response.headers["www-authenticate"] == "Bearer"
        # Credentials are checked before the body is read: bad JSON learns nothing.
        assert (await stranger.post("/v1/events", content=b"{")).status_code == 401
        assert (await stranger.get(f"/v1/customers/{who}/journey")).status_code == 401
    assert await api.receipts(who) == 0
    assert (await api.http.get(f"/v1/customers/{who}/journey")).status_code == 404


async def test_a_batch_answers_per_event_and_one_bad_event_fails_alone(api: Ingest) -> None:
    who, other = customer(), customer()
    earlier = raw_event(who)
    await api.post("/v1/events", earlier)
    fresh = raw_event(who, "app_browse")
    bad = raw_event(other, properties={"amount": "x"})
    batch: list[object] = [
        fresh,
        earlier,  # accepted before: duplicate
        bad,  # refused alone
        fresh,  # repeated within the batch: duplicate
        raw_event(other, "complaint", properties={"severity": "high"}),
        42,
    ]
    response = await api.post("/v1/events:batch", {"events": batch})

    assert response.status_code == 200
    body = response.json()
    assert [r["status"] for r in body["results"]] == [
        "accepted", "duplicate", "rejected", "duplicate", "accepted", "rejected",
    ]  # fmt: skip
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 2, 2)
    rejected = body["results"][2]
    assert rejected["event_id"] == bad["event_id"]
    assert rejected["problem"]["errors"][0]["field"] == "events.2.properties.amount"
    assert body["results"][5]["problem"]["errors"][0]["field"] == "events.5"

    assert (await state_once(api, who, 2))["events_applied"] == 2
    other_state = await state_once(api, other, 1)
    assert other_state["programmes"]["remediation"]["ladder"]["cause"] == "complaint"


async def test_batch_envelope_limits(api: Ingest) -> None:
    too_many = {"events": [raw_event("limits") for _ in range(501)]}
    response = await api.post("/v1/events:batch", too_many)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "events"
    assert "at most 500" in response.json()["detail"]
    assert (await api.post("/v1/events:batch", {"events": []})).status_code == 422
    assert (await api.post("/v1/events:batch", [raw_event("limits")])).status_code == 422
    assert await api.receipts("limits") == 0


def notification(who: str, type: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"n-{uuid.uuid4().hex[:10]}",
        "type": type,
        "occurred_at": "2026-11-23T10:00:00Z",
        "customer_id": who,
        "message_id": "m-1",
    } | extra


async def test_signed_email_webhooks_map_onto_engine_events(api: Ingest) -> None:
    who = customer()
    await api.post("/v1/events", raw_event(who))
    body = {
        "events": [
            notification(who, "delivered"),
            notification(who, "opened", engagement_key="k-1", provider_field="ignored"),
            notification(who, "bounced"),
            notification(who, "unsubscribed"),
            notification(who, "clicked"),
        ]
    }
    response = await api.post_signed("pos", body)

    assert response.status_code == 200
    statuses = [r["status"] for r in response.json()["results"]]
    assert statuses == ["accepted"] * 4 + ["rejected"]
    state = await state_once(api, who, 5)
    kinds = [
        entry["summary"].split(":")[0].split(" (")[0]
        for entry in state["timeline"]
        if entry["kind"] == "event"
    ]
    assert kinds[-4:] == ["email_delivered", "email_opened", "email_bounced", "consent_changed"]
    assert "channel email, granted False" in state["timeline"][-1]["summary"]

    # The provider redelivers the same notifications: duplicates, nothing applied.
    again = await api.post_signed("pos", {"events": body["events"][:4]})
    assert again.json()["duplicates"] == 4


@pytest.mark.parametrize(
    ("source", "secret", "age"),
    [
        ("pos", "not-the-secret", 0),  # wrong secret
        ("pos", None, 600),  # a captured request replayed ten minutes later
        ("pos", None, -600),  # a timestamp from the future
        ("mailer", None, 0),  # a source with no webhook secret
        ("nobody", None, 0),  # no such source
    ],
)
async def test_bad_webhook_signatures_get_401_and_record_nothing(
    api: Ingest, source: str, secret: str | None, age: float
) -> None:
    who = customer()
    body = {"events": [notification(who, "opened")]}
    kwargs: dict[str, Any] = {"at": time.time() - age}
    if secret is not None:
        kwargs["secret"] = secret
    response = await api.post_signed(source, body, **kwargs)
    assert response.status_code == 401
    assert await api.receipts(who) == 0


async def test_an_unsigned_webhook_gets_401(api: Ingest) -> None:
    response = await api.http.post(
        "/v1/webhooks/pos/email", json={"events": [notification(customer(), "opened")]}
    )
    assert response.status_code == 401
    assert "missing Equator-Signature" in response.json()["detail"]


async def test_the_journey_of_an_unknown_customer_is_404(api: Ingest) -> None:
    response = await api.http.get(f"/v1/customers/{customer()}/journey")
    assert response.status_code == 404
    assert response.json()["title"] == "Not found"


async def test_an_event_for_an_ended_journey_is_a_conflict(
    api: Ingest, dev_env: WorkflowEnvironment
) -> None:
    who = customer()
    await api.post("/v1/events", raw_event(who))
    await dev_env.client.get_workflow_handle(journey_id(who)).terminate("erased")
    response = await api.post("/v1/events", raw_event(who))
    assert response.status_code == 409
    assert "has ended" in response.json()["detail"]


async def test_health_readiness_and_the_openapi_document(api: Ingest) -> None:
    assert (await api.http.get("/healthz")).json() == {"status": "ok", "checks": {}}
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"temporal": "ok", "store": "ok", "workers": "ok"}

    document = (await api.http.get("/openapi.json")).json()
    paths = document["paths"]
    assert {"/v1/events", "/v1/events:batch", "/v1/customers/{customer_id}/journey"} <= set(paths)
    schemas = document["components"]["schemas"]
    # Per-type property schemas, and the batch's items point at the event union.
    assert schemas["PurchaseProperties"]["properties"]["amount"]
    assert schemas["EventBatch"]["properties"]["events"]["items"] == {
        "$ref": "#/components/schemas/CustomerEvent"
    }
    assert paths["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    # Each keyed route names its scope, and may answer 403.
    scopes = {
        ("/v1/events", "post"): "events:write",
        ("/v1/events:batch", "post"): "events:write",
        ("/v1/customers/{customer_id}/journey", "get"): "journeys:read",
        ("/v1/customers/{customer_id}", "delete"): "customers:erase",
        ("/v1/reports/programmes", "get"): "reports:read",
        ("/v1/reports/programmes.html", "get"): "reports:read",
    }
    for (path, method), scope in scopes.items():
        assert paths[path][method]["security"] == [{"HTTPBearer": [scope]}]
        assert "403" in paths[path][method]["responses"]
    assert "security" not in paths["/v1/webhooks/{source}/email"]["post"]


async def test_erase_then_a_returning_customer_starts_anew(api: Ingest) -> None:
    who = customer()
    await api.post("/v1/events", raw_event(who))
    await state_once(api, who, 1)

    erased = await api.http.delete(f"/v1/customers/{who}")
    assert erased.status_code == 202
    assert erased.json()["journey_id"] == journey_id(who)
    await eventually(lambda: api.post("/v1/events", raw_event(who)), lambda r: r.status_code == 409)
    assert await api.ledger(who) == []
    assert await api.receipts(who) == 0
    assert (await api.http.delete(f"/v1/customers/{who}")).status_code == 409

    # The erasure's last pass may still be finishing: 503, retried.
    returning = raw_event(who)
    back = await eventually(
        lambda: api.http.post("/v1/events", json=returning, params={"customer_returned": "true"}),
        lambda r: r.status_code != 503,
    )
    assert back.status_code == 202
    state = await state_once(api, who, 1)
    assert (state["events_applied"], state["profile"]["order_count"]) == (1, 1)


async def test_erasing_an_unknown_customer_is_404(api: Ingest) -> None:
    assert (await api.http.delete(f"/v1/customers/{customer()}")).status_code == 404


async def test_a_key_does_only_what_its_source_is_scoped_to(api: Ingest) -> None:
    who = customer()
    async with httpx.AsyncClient(
        base_url=api.url, headers={"Authorization": f"Bearer {TILL_KEY}"}
    ) as till:
        assert (await till.post("/v1/events", json=raw_event(who))).status_code == 202
        for refused, scope in [
            (await till.get(f"/v1/customers/{who}/journey"), "journeys:read"),
            (await till.delete(f"/v1/customers/{who}"), "customers:erase"),
            (await till.get("/v1/reports/programmes"), "reports:read"),
        ]:
            assert refused.status_code == 403
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["title"] == "Forbidden"
            assert (
                refused.json()["detail"] == f"the API key of source 'till' lacks the scope {scope}"
            )
    # The events were the till's to send; the customer was not its to erase.
    assert (await state_once(api, who, 1))["events_applied"] == 1

    async with httpx.AsyncClient(
        base_url=api.url, headers={"Authorization": f"Bearer {REPORTING_KEY}"}
    ) as reporting:
        # The scope is checked before the body is read: a bad body learns nothing either.
        for body in [raw_event(who), {"event_id": 42}]:
            refused = await reporting.post("/v1/events", json=body)
            assert refused.status_code == 403
            assert "events:write" in refused.json()["detail"]
        refused = await reporting.post("/v1/events:batch", json={"events": [raw_event(who)]})
        assert refused.status_code == 403
    assert await api.receipts(who) == 1


async def test_a_key_configured_before_scopes_keeps_its_rights_but_reads_no_reports(
    api: Ingest,
) -> None:
    # `pos` has no scopes configured: it sends, reads and erases (the tests above), and
    # is refused the report, which came after it.
    for path in ("/v1/reports/programmes", "/v1/reports/programmes.html"):
        refused = await api.http.get(path)
        assert refused.status_code == 403
        assert (
            refused.json()["detail"] == "the API key of source 'pos' lacks the scope reports:read"
        )
        async with httpx.AsyncClient(base_url=api.url) as stranger:
            assert (await stranger.get(path)).status_code == 401


@pytest.fixture(scope="module")
async def reported(api: Ingest) -> AsyncIterator[httpx.AsyncClient]:
    """The API, its store holding the known silence population, called with a key
    scoped to reports."""
    await population(api.store)
    headers = {"Authorization": f"Bearer {REPORTING_KEY}"}
    async with httpx.AsyncClient(base_url=api.url, headers=headers, timeout=30) as client:
        yield client


def silence(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The silence ladder's steps (other tests' journeys may have engaged on others)."""
    return [step for step in document["steps"] if step["cause"] == "silence"]


async def test_the_programme_report_as_json(reported: httpx.AsyncClient) -> None:
    response = await reported.get("/v1/reports/programmes")
    assert response.status_code == 200
    document = response.json()
    assert document["since"] is None
    assert document["generated_at"]
    first, second = silence(document)
    assert (first["step"], first["step_name"]) == (1, "we miss you")
    assert (first["treated"]["customers"], first["control"]["customers"]) == (60, 40)
    assert (first["treated"]["recovered"], first["control"]["recovered"]) == (18, 4)
    assert first["treated"]["revenue"] == "840"
    assert first["incremental_recovery_rate"]["value"] == pytest.approx(0.2)
    assert second["incremental_recovery_rate"] is None  # not enough data

    # A date is midnight UTC.
    since = await reported.get("/v1/reports/programmes", params={"since": "2026-11-03"})
    assert since.json()["since"] == "2026-11-03T00:00:00Z"
    assert [step["step"] for step in silence(since.json())] == [2]


@pytest.mark.parametrize(
    ("since", "reason"),
    [
        ("yesterday", "expected a date or a date and time"),
        ("1762000000", "expected a date or a date and time"),  # not unix seconds
        ("2026-13-01", "month must be in 1..12"),
        ("0001-01-01T00:00:00+05:00", "out of range once converted to UTC"),
    ],
)
async def test_a_bad_since_is_refused_naming_it(
    reported: httpx.AsyncClient, since: str, reason: str
) -> None:
    for path in ("/v1/reports/programmes", "/v1/reports/programmes.html"):
        response = await reported.get(path, params={"since": since})
        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        [error] = response.json()["errors"]
        assert error["field"] == "query.since"
        assert reason in error["reason"]


async def test_the_programme_report_as_a_page(reported: httpx.AsyncClient) -> None:
    response = await reported.get("/v1/reports/programmes.html")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-encoding"] == "gzip"  # 4.8 MB of plotly.js, compressed
    page = response.text
    assert "plotly.js v" in page
    assert "<script src" not in page
    sections = re.findall(
        r'<h2>(.*?)</h2>\n<div class="chart" id="(chart-\d+)"></div>\n'
        r'<script type="application/json" data-chart="\2">(.*?)</script>',
        page,
    )
    [chart] = [json.loads(figure) for cause, _, figure in sections if cause == "silence"]
    treated, control, cost, revenue = chart["data"]
    assert (treated["y"], control["y"]) == ([18 / 60, 0.0], [4 / 40, 0.0])
    assert cost["y"] == [3.0, 5.5]
    assert revenue["y"] == [pytest.approx(600.0), None]

    plain = await reported.get(
        "/v1/reports/programmes.html", headers={"Accept-Encoding": "identity"}
    )
    assert "content-encoding" not in plain.headers
    assert plain.text.startswith("<!doctype html>")
