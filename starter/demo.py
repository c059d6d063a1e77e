"""A small synthetic population, fed through the ingest API to real journeys with
windows of seconds.

Steady buyers keep buying (and grow from new to repeat to loyal); the others act out
one story each, so that within a minute the Temporal UI shows a silence ladder climbing,
a return and a complaint being made good, a VIP handled by a person first, a cross-sell
redeemed in store, a first order welcomed and activated, a customer won back at step 2,
and one going dormant, then lapsed, and asked by the winback why she left.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any

import structlog

from runtime.settings import CampaignSettings
from starter.client import EquatorClient, event_body
from workflows.calendar import Campaign
from workflows.cohorts import CohortRules
from workflows.config import JourneyConfig
from workflows.contact import ContactPolicy
from workflows.holdout import HoldoutRules, held_back_from
from workflows.programmes.winback import WinbackRules

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Beat:
    """At ``at`` seconds into the demo, ``customer`` does ``type``."""

    at: float
    customer: str
    type: str
    properties: dict[str, Any] = field(default_factory=dict)


STORIES: tuple[Beat, ...] = (
    # Buys three times, then falls silent: flatline, the silence ladder, dormancy; two
    # minutes on she is lapsed, the winback asks her why, and she answers (three stars).
    Beat(0, "lapsing-lena", "purchase", {"amount": 64, "category": "dresses"}),
    Beat(4, "lapsing-lena", "purchase", {"amount": 48, "category": "dresses"}),
    Beat(8, "lapsing-lena", "purchase", {"amount": 52, "category": "knitwear"}),
    Beat(140, "lapsing-lena", "feedback", {"rating": 3}),
    # Returns one of two orders: the return ladder, until the exchange credit wins her.
    Beat(1, "returning-rosa", "purchase", {"amount": 120, "category": "shoes"}),
    Beat(2, "returning-rosa", "purchase", {"amount": 80, "category": "bags"}),
    Beat(5, "returning-rosa", "return", {"amount": 120, "reason": "fit"}),
    Beat(22, "returning-rosa", "offer_redeemed", {"offer_id": "exchange-credit", "amount": 110}),
    # Complains; priority service; her five-star feedback makes it good.
    Beat(2, "complaining-carl", "purchase", {"amount": 300, "category": "outerwear"}),
    Beat(6, "complaining-carl", "complaint", {"reason": "damaged", "severity": "high"}),
    Beat(30, "complaining-carl", "feedback", {"rating": 5}),
    # A VIP (three big orders) returns one: a service ticket opens before any marketing;
    # her five-star feedback wins the ladder and earns her a thank-you.
    Beat(1, "vip-vera", "purchase", {"amount": 450, "category": "coats"}),
    Beat(3, "vip-vera", "purchase", {"amount": 480, "category": "boots"}),
    Beat(5, "vip-vera", "purchase", {"amount": 420, "category": "dresses"}),
    Beat(9, "vip-vera", "return", {"amount": 280, "reason": "fit"}),
    Beat(26, "vip-vera", "feedback", {"rating": 5}),
    # Only ever buys dresses; browsing dresses in the app earns her double points on
    # shoes (not 10% off dresses), which she redeems in store: the loop closes.
    Beat(1, "samantha", "purchase", {"amount": 150, "category": "dresses"}),
    Beat(2, "samantha", "purchase", {"amount": 120, "category": "dresses"}),
    Beat(7, "samantha", "app_browse", {"category": "dresses"}),
    Beat(
        14,
        "samantha",
        "offer_redeemed",
        {"offer_id": "double-points", "amount": 90, "category": "shoes"},
    ),
    # A first order: welcomed, nudged once, and back for a second: activated.
    Beat(10, "new-nina", "purchase", {"amount": 30, "category": "basics"}),
    Beat(34, "new-nina", "purchase", {"amount": 45, "category": "knitwear"}),
    # Falls silent, opens the offer at step 2 (a response: the climb goes on), and
    # buys: won back.
    Beat(3, "quiet-quinn", "purchase", {"amount": 35, "category": "accessories"}),
    Beat(37, "quiet-quinn", "email_opened", {}),
    Beat(40, "quiet-quinn", "purchase", {"amount": 42, "category": "accessories"}),
)

# Two customers alike in every way go silent together; the silence ladder climbs for
# both, but one is in remediation's control group and gets ghosts. She comes back by
# herself, as a control group is there to show. Who is held back is a hash, so the demo
# picks the pair from these names at start.
TWINS = tuple(
    f"twin-{name}"
    for name in ("tess", "tara", "toby", "theo", "tia", "tom", "tina", "ted", "tova", "tal")
)
TWIN_STORY: tuple[Beat, ...] = (
    Beat(2, "treated", "purchase", {"amount": 58, "category": "dresses"}),
    Beat(2, "held back", "purchase", {"amount": 58, "category": "dresses"}),
    Beat(41, "held back", "purchase", {"amount": 61, "category": "dresses"}),
)

STEADY_BUYERS = ("steady-sam", "steady-sasha", "steady-sol")


def demo_journey() -> JourneyConfig:
    """Windows of seconds, so a newcomer watches ladders climb within a minute and a
    customer lapse, and be won back, within three."""
    winback = WinbackRules()
    seconds = timedelta(seconds=15)
    return JourneyConfig(
        silence_min=timedelta(seconds=15),
        silence_default=timedelta(seconds=20),
        silence_max=timedelta(seconds=60),
        response_window=timedelta(seconds=10),
        dormant_cadence=timedelta(seconds=90),
        # Whatever the hour the demo runs at, no quiet hours; the cap in seconds too.
        contact=ContactPolicy(
            quiet_start=time(0),
            quiet_end=time(0),
            marketing_cap=6,
            cap_window=timedelta(seconds=30),
        ),
        cohorts=CohortRules(lapsed_after=timedelta(minutes=2)),
        # The stories are scripted: only the twins are drawn (see ``TWINS``).
        holdouts=HoldoutRules(
            shares={"remediation": 0.5},
            exempt=frozenset([*(beat.customer for beat in STORIES), *STEADY_BUYERS]),
        ),
        programmes={
            "welcome": {"activation_after": seconds},
            "cross_sell": {"delay": timedelta(seconds=10)},
            # Repeat buyers seconds apart would "break their cadence" within seconds:
            # in the demo only VIPs and loyal customers are watched.
            "pivot_care": {"care_window": timedelta(seconds=20), "care_cohorts": ["vip", "loyal"]},
            "winback": {
                "follow_ups": [s.model_copy(update={"wait": seconds}) for s in winback.follow_ups],
                "answer_within": seconds,
            },
        },
    )


FLASH_SALE_AT = timedelta(seconds=20)
FLASH_SALE_LASTS = timedelta(minutes=10)


def demo_campaigns(settings: CampaignSettings) -> CampaignSettings:
    """Results counted every 10 seconds, so the Flash Sale's show within its minutes."""
    pace = settings.fan_out.model_copy(update={"results_every": timedelta(seconds=10)})
    return settings.model_copy(update={"fan_out": pace})


def flash_sale(now: datetime) -> Campaign:
    """The demo's campaign, starting soon: carl is in complaint remediation then and
    vera in VIP care (both suppressed); the others hear about the category they buy.
    Named by its start, so that a demo run again on the same server is a new campaign."""
    starts = (now + FLASH_SALE_AT).replace(microsecond=0)
    return Campaign(
        name=f"flash-sale-{starts:%Y%m%d-%H%M%S}",
        title="Flash Sale",
        starts_at=starts,
        ends_at=starts + FLASH_SALE_LASTS,
        content_key="flash-sale",
        categories=("dresses", "shoes", "coats"),
        offer_id="pct10",
    )


STEADY_EVERY = 6.0


def twins(rules: HoldoutRules, now: datetime) -> dict[str, str]:
    """The twins' story cast: which of ``TWINS`` is treated and which is held back now."""
    held = [name for name in TWINS if held_back_from(name, "remediation", now, rules)]
    treated = [name for name in TWINS if name not in held]
    # Ten fair draws: all ten on one side happens once in 512 quarters.
    return {"treated": (treated or TWINS)[0], "held back": (held or TWINS)[0]}


async def run_demo(client: EquatorClient) -> None:
    """Play the stories through the ingest API, then keep the steady buyers buying until
    cancelled. The journeys take their (short) windows from the API's configuration."""

    async def send(customer: str, type: str, properties: dict[str, Any]) -> None:
        await client.send(event_body(customer, type, properties, id_prefix="demo"))
        log.info("demo.event", customer_id=customer, type=type)

    cast = twins(demo_journey().holdouts, datetime.now(UTC))
    beats = [*STORIES, *(replace(b, customer=cast[b.customer]) for b in TWIN_STORY)]

    async def stories() -> None:
        started = asyncio.get_running_loop().time()
        for beat in sorted(beats, key=lambda beat: beat.at):
            delay = beat.at - (asyncio.get_running_loop().time() - started)
            await asyncio.sleep(max(0.0, delay))
            await send(beat.customer, beat.type, beat.properties)

    async def steady() -> None:
        for round in itertools.count():
            for customer in STEADY_BUYERS:
                await send(customer, "purchase", {"amount": 20 + round % 5, "category": "basics"})
            await asyncio.sleep(STEADY_EVERY)

    await asyncio.gather(stories(), steady())
