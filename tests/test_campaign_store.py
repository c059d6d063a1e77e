"""Calendared campaigns in the store, on SQLite and on PostgreSQL: contacts filed once,
conversions, results, the audience by pages, erasure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import select
from temporalio.testing import ActivityEnvironment

from activities.campaigns import CampaignActivities
from activities.erasure import ErasureActivities
from activities.store import CampaignContactRecord, Customer, Store
from workflows.cohorts import Cohort
from workflows.contracts import (
    AudiencePage,
    AudiencePageRequest,
    CampaignContact,
    CampaignResults,
    ContactOutcome,
    EraseRequest,
    RecordCampaignContactsRequest,
)

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
SALE = "black-friday"


def contact(
    customer_id: str,
    outcome: ContactOutcome,
    at: datetime = T0,
    reason: str | None = None,
    campaign: str = SALE,
) -> CampaignContact:
    sent = outcome == ContactOutcome.SENT
    return CampaignContact(
        campaign=campaign,
        customer_id=customer_id,
        outcome=outcome,
        at=at,
        reason=reason,
        channel="email" if sent else None,
        content_key="black-friday/shoes" if sent else None,
    )


async def record(store: Store, *contacts: CampaignContact) -> None:
    request = RecordCampaignContactsRequest(contacts=list(contacts))
    await ActivityEnvironment().run(CampaignActivities(store).record_campaign_contacts, request)


async def results(store: Store, campaign: str = SALE) -> CampaignResults:
    activities = CampaignActivities(store)
    found: CampaignResults = await ActivityEnvironment().run(activities.campaign_results, campaign)
    return found


async def page(store: Store, request: AudiencePageRequest) -> list[str]:
    activities = CampaignActivities(store)
    found: AudiencePage = await ActivityEnvironment().run(activities.audience_page, request)
    return found.customer_ids


async def rows(store: Store) -> dict[tuple[str, str], CampaignContactRecord]:
    async with store.transaction() as session:
        found = (await session.exec(select(CampaignContactRecord))).all()
    return {(row.campaign, row.customer_id): row for row in found}


async def add_customers(store: Store, cohorts: dict[str, Cohort | None]) -> None:
    async with store.transaction() as session:
        for customer_id, cohort in cohorts.items():
            session.add(
                Customer(
                    customer_id=customer_id,
                    first_seen_at=T0,
                    updated_at=T0,
                    cohort=cohort.value if cohort else None,
                )
            )


async def test_the_first_decision_stands(store: Store) -> None:
    await record(store, contact("c1", ContactOutcome.SENT))
    await record(
        store,
        contact("c1", ContactOutcome.SENT, T0 + timedelta(hours=1)),
        contact("c1", ContactOutcome.SUPPRESSED, T0 + timedelta(hours=2), "frequency_cap"),
        contact("c2", ContactOutcome.SUPPRESSED, T0, "no_consent"),
        contact("c2", ContactOutcome.SENT, T0 + timedelta(hours=1)),
    )
    await record(store, contact("c2", ContactOutcome.SENT, T0 + timedelta(hours=3)))

    filed = await rows(store)
    assert set(filed) == {(SALE, "c1"), (SALE, "c2")}
    first = filed[SALE, "c1"]
    assert (first.outcome, first.decided_at, first.reason) == ("sent", T0, None)
    assert (first.channel, first.content_key) == ("email", "black-friday/shoes")
    second = filed[SALE, "c2"]
    assert (second.outcome, second.decided_at, second.reason) == ("suppressed", T0, "no_consent")
    assert second.channel is None


async def test_a_conversion_is_filed_once_and_only_after_a_decision(store: Store) -> None:
    bought, again = T0 + timedelta(days=1), T0 + timedelta(days=2)
    await record(store, contact("c1", ContactOutcome.SENT))
    await record(store, contact("c1", ContactOutcome.CONVERTED, bought))
    await record(store, contact("c1", ContactOutcome.CONVERTED, again))
    # No decision was filed for c2 in this campaign: its conversion is ignored.
    await record(store, contact("c2", ContactOutcome.CONVERTED, bought))
    # Nor does a conversion in another campaign touch this one.
    await record(store, contact("c1", ContactOutcome.CONVERTED, bought, campaign="cyber-monday"))

    filed = await rows(store)
    assert set(filed) == {(SALE, "c1")}
    assert filed[SALE, "c1"].converted_at == bought
    assert filed[SALE, "c1"].outcome == "sent"


async def test_results_count_outcomes_and_suppressions_by_reason(store: Store) -> None:
    await record(
        store,
        *(contact(f"s{i}", ContactOutcome.SENT) for i in range(4)),
        contact("f1", ContactOutcome.FAILED, reason="bounced"),
        contact("q1", ContactOutcome.SUPPRESSED, reason="no_consent"),
        contact("q2", ContactOutcome.SUPPRESSED, reason="no_consent"),
        contact("q3", ContactOutcome.SUPPRESSED, reason="frequency_cap"),
        contact("q4", ContactOutcome.SUPPRESSED),
        # Another campaign's contacts are not counted.
        contact("s0", ContactOutcome.SUPPRESSED, reason="no_consent", campaign="cyber-monday"),
    )
    await record(
        store,
        contact("s0", ContactOutcome.CONVERTED, T0 + timedelta(days=1)),
        contact("s1", ContactOutcome.CONVERTED, T0 + timedelta(days=1)),
    )

    assert await results(store) == CampaignResults(
        sent=4,
        failed=1,
        converted=2,
        suppressed={"no_consent": 2, "frequency_cap": 1, "unknown": 1},
    )
    assert (await results(store)).decided == 9
    assert await results(store, "never-ran") == CampaignResults()


async def test_the_audience_comes_in_pages_in_id_order(store: Store) -> None:
    cohorts = [Cohort.VIP, Cohort.NEW, None, Cohort.LOYAL, Cohort.VIP, Cohort.LAPSED, Cohort.NEW]
    # Added out of order: the pages are in id order whatever the insertion order.
    await add_customers(store, {f"cust-{i}": cohorts[i - 1] for i in (5, 2, 7, 1, 3, 6, 4)})

    pages: list[list[str]] = []
    after: str | None = None
    while True:
        ids = await page(store, AudiencePageRequest(after=after, limit=3))
        pages.append(ids)
        if not ids:
            break
        after = ids[-1]
    assert pages == [
        ["cust-1", "cust-2", "cust-3"],
        ["cust-4", "cust-5", "cust-6"],
        ["cust-7"],
        [],
    ]

    vip_or_new = AudiencePageRequest(cohorts=frozenset({Cohort.VIP, Cohort.NEW}), limit=3)
    assert await page(store, vip_or_new) == ["cust-1", "cust-2", "cust-5"]
    vip_or_new = vip_or_new.model_copy(update={"after": "cust-5"})
    assert await page(store, vip_or_new) == ["cust-7"]
    lapsed = AudiencePageRequest(cohorts=frozenset({Cohort.LAPSED}))
    assert await page(store, lapsed) == ["cust-6"]


async def test_erasure_removes_the_customers_campaign_contacts(store: Store) -> None:
    await add_customers(store, {"c1": Cohort.VIP, "c2": Cohort.VIP})
    await record(
        store,
        contact("c1", ContactOutcome.SENT),
        contact("c1", ContactOutcome.SUPPRESSED, reason="quiet_hours", campaign="cyber-monday"),
        contact("c2", ContactOutcome.SENT),
    )

    erased = await ActivityEnvironment().run(
        ErasureActivities(store).erase_customer, EraseRequest(customer_id="c1", request_id="r1")
    )

    assert erased.deleted_rows == 3  # the profile and two campaign contacts
    assert set(await rows(store)) == {(SALE, "c2")}
    assert await results(store) == CampaignResults(sent=1)
