"""Reading a journey state carried over from 0.1, when every feature had its own field.

A journey that continued as new on 0.1 starts its next run with that state; this moves
each feature's fields under the programme that now owns them, and the contact policy's
holds (``deferred_until`` on a ladder run, an offer, a campaign) into ``held``. Pure
data to data. Retire it with the 0.1 patches (``workflows/patches.py``).
"""

from __future__ import annotations

from typing import Any

_REMEDIATION = {
    "silence_deadline": "silence_deadline",
    "dormant": "dormant",
    "ladder": "ladder",
    "ladder_runs": "runs",
    "remediation_spend": "spend",
    "remediations_won": "won",
}
_OFFERS = {
    "offer_due": "offer_due",
    "wallet": "wallet",
    "conversions": "conversions",
    "recent_purchases": "recent_purchases",
}
_CAMPAIGNS = {
    "campaigns_seen": "seen",
    "campaigns_due": "due",
    "campaigns_reached": "reached",
    "campaign_contacts_due": "contacts_due",
}
_FIELDS_0_1 = {*_REMEDIATION, *_OFFERS, *_CAMPAIGNS, "thanks_due"}


def upgrade(data: Any) -> Any:
    if not isinstance(data, dict) or not _FIELDS_0_1 & data.keys():
        return data
    data = dict(data)
    held: dict[str, Any] = dict(data.get("held") or {})
    programmes: dict[str, Any] = dict(data.get("programmes") or {})

    remediation = _take(data, _REMEDIATION)
    ladder = remediation.get("ladder")
    if isinstance(ladder, dict):
        step_key = f"{ladder['run_id']}/step-{ladder.get('step', 0) + 1}"
        remediation["ladder"] = _lift_hold(ladder, held, step_key)
    programmes["remediation"] = remediation

    thanks_due = data.pop("thanks_due", None)
    if thanks_due is not None:
        programmes["vip_thanks"] = {"feedback_event_id": thanks_due}

    offers = _take(data, _OFFERS)
    offer = offers.get("offer_due")
    if isinstance(offer, dict):
        offers["offer_due"] = _lift_hold(offer, held, f"{offer['key']}/step-1")
    # Offers in the wallet went out long ago: a hold left on one means nothing.
    offers["wallet"] = [_lift_hold(made, {}, "") for made in offers.get("wallet") or []]
    if any(offers.values()):
        programmes["above_the_line"] = offers

    campaigns = _take(data, _CAMPAIGNS)
    campaigns["due"] = [
        _lift_hold(entry, held, f"campaign-{entry['campaign']['name']}/step-1")["campaign"]
        for entry in campaigns.get("due") or []
    ]
    if any(campaigns.values()):
        programmes["campaigns"] = campaigns

    data["held"] = held
    data["programmes"] = programmes
    return data


def _take(data: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {new: data.pop(old) for old, new in names.items() if data.get(old) is not None}


def _lift_hold(entry: Any, held: dict[str, Any], key: str) -> Any:
    """``entry`` without its 0.1 hold (``deferred_until``), which moves to ``held``."""
    if not isinstance(entry, dict):
        return entry
    entry = dict(entry)
    until = entry.pop("deferred_until", None)
    if until is not None:
        held[key] = until
    return entry
