"""Contact policy: whether, when and on which channel a journey may reach a customer.

It applies to every engagement of every ladder: consent per channel (with fallbacks), a
cap on marketing touches per window (service messages are exempt), and quiet hours in
the customer's own timezone. Pure functions; the journey waits durably when told to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field

from workflows.profile import Profile

_FALLBACKS: dict[str, tuple[str, ...]] = {
    "email": ("push", "sms"),
    "push": ("email", "sms"),
    "sms": ("push", "email"),
}


class ContactPolicy(BaseModel):
    model_config = ConfigDict(frozen=True)

    # Reachable until the customer says otherwise (a consent_changed event); a channel
    # outside this set needs the customer's explicit consent.
    consented_by_default: frozenset[str] = frozenset({"email", "push", "service"})
    # Where a step goes when the customer has withdrawn consent for its own channel.
    fallbacks: dict[str, tuple[str, ...]] = Field(default_factory=lambda: dict(_FALLBACKS))
    # Service (customer-service contact) is never capped; marketing is.
    service_channels: frozenset[str] = frozenset({"service"})
    # Work for staff, not messages to the customer (a service ticket): always at once.
    internal_channels: frozenset[str] = frozenset({"ticket"})
    marketing_cap: int = Field(default=3, ge=1)
    cap_window: timedelta = timedelta(days=7)
    # No engagement between these local times (the window may cross midnight; equal
    # times mean no quiet hours).
    quiet_start: time = time(21, 0)
    quiet_end: time = time(8, 0)
    # For customers whose timezone is not known (or not a real zone).
    default_timezone: str = "UTC"


@dataclass(frozen=True)
class Send:
    channel: str


@dataclass(frozen=True)
class Defer:
    until: datetime
    reason: str


@dataclass(frozen=True)
class Skip:
    reason: str


Decision = Send | Defer | Skip


def decide(
    profile: Profile,
    policy: ContactPolicy,
    channel: str,
    marketing_touches: list[datetime],
    now: datetime,
) -> Decision:
    """What to do with an engagement meant for ``channel`` at ``now``."""
    if channel in policy.internal_channels:
        return Send(channel)
    reachable = reachable_channel(profile, policy, channel)
    if reachable is None:
        return Skip(f"no consent for {channel} or its fallbacks")
    if reachable not in policy.service_channels:
        recent = sorted(t for t in marketing_touches if t > now - policy.cap_window)
        if len(recent) >= policy.marketing_cap:
            until = recent[-policy.marketing_cap] + policy.cap_window
            return Defer(until, f"frequency cap: {policy.marketing_cap} per {policy.cap_window}")
    zone = timezone_of(profile, policy)
    opens = quiet_hours_end(now, zone, policy.quiet_start, policy.quiet_end)
    if opens is not None:
        local = f"{policy.quiet_end:%H:%M} {zone.key}"
        return Defer(opens, f"quiet hours until {local}")
    return Send(reachable)


def reachable_channel(profile: Profile, policy: ContactPolicy, channel: str) -> str | None:
    for candidate in (channel, *policy.fallbacks.get(channel, ())):
        if profile.consent.get(candidate, candidate in policy.consented_by_default):
            return candidate
    return None


def timezone_of(profile: Profile, policy: ContactPolicy) -> ZoneInfo:
    for name in (profile.timezone, policy.default_timezone):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                continue
    return ZoneInfo("UTC")


def quiet_hours_end(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """When the quiet window around ``now`` opens again (UTC), or None outside it."""
    local = now.astimezone(zone)
    at = local.time().replace(tzinfo=None)
    crosses_midnight = start > end
    quiet = (at >= start or at < end) if crosses_midnight else start <= at < end
    if not quiet:
        return None
    day = local.date() if at < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone).astimezone(UTC)


def recent_touches(touches: list[datetime], policy: ContactPolicy, now: datetime) -> list[datetime]:
    """The marketing touches the cap still counts; older ones are forgotten."""
    return [t for t in touches if t > now - policy.cap_window]
