"""Calendared campaigns in the store: who is in the audience, what each contact came
to, and the campaign's results counted from it."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlmodel import col
from temporalio import activity

from activities.store import CampaignContactRecord, Customer, Store
from workflows.contracts import (
    AUDIENCE_PAGE,
    CAMPAIGN_RESULTS,
    RECORD_CAMPAIGN_CONTACTS,
    AudiencePage,
    AudiencePageRequest,
    CampaignContact,
    CampaignResults,
    ContactOutcome,
    RecordCampaignContactsRequest,
)

log = structlog.get_logger(__name__)

# Rows per INSERT: well inside both databases' limits on bound parameters.
_CHUNK = 1_000
# What a suppression with no reason given is counted under.
UNKNOWN_REASON = "unknown"


class CampaignActivities:
    def __init__(self, store: Store) -> None:
        self._store = store

    @activity.defn(name=RECORD_CAMPAIGN_CONTACTS)
    async def record_campaign_contacts(self, request: RecordCampaignContactsRequest) -> None:
        """File what campaigns came to, idempotently: the first decision (sent,
        suppressed, failed) for a campaign and customer stands, so a retried or replayed
        filing inserts nothing; a conversion marks a decided contact once and is ignored
        where no decision was filed."""
        if not request.contacts:
            return
        decisions: dict[tuple[str, str], dict[str, Any]] = {}
        conversions: list[CampaignContact] = []
        for contact in request.contacts:
            if contact.outcome == ContactOutcome.CONVERTED:
                conversions.append(contact)
            else:
                # Within one request too, the first decision stands.
                decisions.setdefault((contact.campaign, contact.customer_id), _row(contact))
        rows = list(decisions.values())
        table = CampaignContactRecord
        recorded = converted = 0
        async with self._store.transaction() as session:
            connection = await session.connection()
            for start in range(0, len(rows), _CHUNK):
                statement = (
                    self._store.insert(table)
                    .values(rows[start : start + _CHUNK])
                    .on_conflict_do_nothing()
                    .returning(col(table.campaign))
                )
                recorded += len((await connection.execute(statement)).all())
            for contact in conversions:
                result = await connection.execute(
                    update(table)
                    .where(
                        col(table.campaign) == contact.campaign,
                        col(table.customer_id) == contact.customer_id,
                        col(table.converted_at).is_(None),
                    )
                    .values(converted_at=contact.at)
                )
                converted += result.rowcount
        log.info(
            "campaign.contacts_recorded",
            campaigns=sorted({contact.campaign for contact in request.contacts}),
            decisions=len(rows),
            recorded=recorded,
            conversions=len(conversions),
            converted=converted,
        )

    @activity.defn(name=AUDIENCE_PAGE)
    async def audience_page(self, request: AudiencePageRequest) -> AudiencePage:
        """One page of a campaign's audience from the single customer view, by keyset
        (ids after the last page's last), so customers arriving or leaving between pages
        neither shift nor repeat the rest."""
        query = select(col(Customer.customer_id))
        if request.cohorts:
            cohorts = sorted(cohort.value for cohort in request.cohorts)
            query = query.where(col(Customer.cohort).in_(cohorts))
        if request.after is not None:
            query = query.where(col(Customer.customer_id) > request.after)
        query = query.order_by(col(Customer.customer_id)).limit(request.limit)
        async with self._store.transaction() as session:
            connection = await session.connection()
            ids = (await connection.execute(query)).scalars().all()
        return AudiencePage(customer_ids=list(ids))

    @activity.defn(name=CAMPAIGN_RESULTS)
    async def campaign_results(self, campaign: str) -> CampaignResults:
        """Count one campaign's contacts in the database, grouped by outcome and reason;
        a conversion is counted whatever the decision it followed."""
        table = CampaignContactRecord
        outcome, reason = col(table.outcome), col(table.reason)
        query = (
            select(outcome, reason, func.count(), func.count(col(table.converted_at)))
            .where(col(table.campaign) == campaign)
            .group_by(outcome, reason)
        )
        async with self._store.transaction() as session:
            connection = await session.connection()
            groups = (await connection.execute(query)).all()
        results = CampaignResults()
        for decided, why, contacts, converted in groups:
            if decided == ContactOutcome.HELD_BACK:
                results.held_back += contacts
                results.held_back_converted += converted
                continue
            results.converted += converted
            if decided == ContactOutcome.SENT:
                results.sent += contacts
            elif decided == ContactOutcome.FAILED:
                results.failed += contacts
            elif decided == ContactOutcome.SUPPRESSED:
                # No reason given and "unknown" given are the same group.
                why = why or UNKNOWN_REASON
                results.suppressed[why] = results.suppressed.get(why, 0) + contacts
        return results


def _row(contact: CampaignContact) -> dict[str, Any]:
    return {
        "campaign": contact.campaign,
        "customer_id": contact.customer_id,
        "outcome": contact.outcome.value,
        "reason": contact.reason,
        "channel": contact.channel,
        "content_key": contact.content_key,
        "decided_at": contact.at,
    }
