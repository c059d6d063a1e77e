"""The contact policy as plain functions: consent, caps, quiet hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from workflows.contact import (
    ContactPolicy,
    Defer,
    Send,
    Skip,
    decide,
    quiet_hours_end,
    reachable_channel,
    timezone_of,
)
from workflows.profile import Profile

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
POLICY = ContactPolicy()


def consenting(**channels: bool) -> Profile:
    return Profile(consent=channels)


@pytest.mark.parametrize(
    ("consent", "channel", "reached"),
    [
        ({}, "email", "email"),  # reachable by default
        ({"email": False}, "email", "push"),  # withdrawn: the first fallback
        ({"email": False, "push": False}, "email", None),  # sms needs explicit consent
        ({"email": False, "push": False, "sms": True}, "email", "sms"),
        ({}, "sms", "push"),  # never opted in to sms
        ({"sms": True}, "sms", "sms"),
        ({"service": False}, "service", None),  # no fallback for a service call
    ],
)
def test_consent_picks_the_channel_or_none(
    consent: dict[str, bool], channel: str, reached: str | None
) -> None:
    assert reachable_channel(consenting(**consent), POLICY, channel) == reached


def test_no_consented_channel_skips_the_step() -> None:
    decision = decide(consenting(email=False, push=False), POLICY, "email", [], NOON)
    assert decision == Skip("no consent for email or its fallbacks")


def test_the_marketing_cap_defers_until_the_oldest_counted_touch_leaves_the_window() -> None:
    touches = [NOON - timedelta(days=d) for d in (6, 3, 1)]
    decision = decide(Profile(), POLICY, "email", touches, NOON)
    assert isinstance(decision, Defer)
    assert decision.until == NOON - timedelta(days=6) + POLICY.cap_window
    assert "frequency cap: 3 per 7 days" in decision.reason
    # Touches older than the window no longer count; service is never capped.
    assert decide(Profile(), POLICY, "email", touches[1:], NOON) == Send("email")
    assert decide(Profile(), POLICY, "service", touches, NOON) == Send("service")


@pytest.mark.parametrize(
    ("local", "opens"),
    [
        ("2026-11-23T22:30", "2026-11-24T08:00"),  # evening: tomorrow morning
        ("2026-11-24T06:15", "2026-11-24T08:00"),  # early morning: this morning
        ("2026-11-24T08:00", None),  # the window has opened
        ("2026-11-24T20:59", None),
    ],
)
def test_quiet_hours_cross_midnight_in_the_customers_zone(local: str, opens: str | None) -> None:
    paris = ZoneInfo("Europe/Paris")
    now = datetime.fromisoformat(local).replace(tzinfo=paris).astimezone(UTC)
    end = quiet_hours_end(now, paris, time(21), time(8))
    expected = None if opens is None else datetime.fromisoformat(opens).replace(tzinfo=paris)
    assert end == expected


def test_quiet_hours_defer_and_equal_bounds_mean_none() -> None:
    tokyo = Profile(timezone="Asia/Tokyo")  # 12:00 UTC is 21:00 in Tokyo
    decision = decide(tokyo, POLICY, "email", [], NOON)
    assert isinstance(decision, Defer)
    assert decision.until == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)  # 08:00 Tokyo
    assert decision.reason == "quiet hours until 08:00 Asia/Tokyo"
    never_quiet = ContactPolicy(quiet_start=time(0), quiet_end=time(0))
    assert decide(tokyo, never_quiet, "email", [], NOON) == Send("email")


def test_an_unknown_timezone_falls_back_to_the_policys() -> None:
    assert timezone_of(Profile(timezone="Mars/Olympus_Mons"), POLICY).key == "UTC"
    paris = ContactPolicy(default_timezone="Europe/Paris")
    assert timezone_of(Profile(), paris).key == "Europe/Paris"
