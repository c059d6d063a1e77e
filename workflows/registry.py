"""The ladders and programmes every journey runs: register a new one here, one line.

Programmes hear an event in this order; remediation comes first because the others
read the standing it sets (line position, a climb under way). When they act in a pass
is their ``turn``.
"""

from __future__ import annotations

from typing import Any

from workflows.ladders import COMPLAINT, DELIVERY_LATE, DORMANT, RETURN, SILENCE
from workflows.programme import Programme
from workflows.programmes.above_the_line import AboveTheLine
from workflows.programmes.campaigns import Campaigns
from workflows.programmes.cross_sell import CrossSell
from workflows.programmes.email_engagement import EmailEngagement
from workflows.programmes.milestones import Milestones
from workflows.programmes.payment_failed import PAYMENT_FAILED
from workflows.programmes.pivot_care import PIVOT_CARE
from workflows.programmes.remediation import Remediation
from workflows.programmes.vip_thanks import VipThanks
from workflows.programmes.welcome import Welcome
from workflows.programmes.winback import Winback

REMEDIATION = Remediation(
    ladders=(SILENCE, RETURN, DELIVERY_LATE, COMPLAINT, DORMANT, PAYMENT_FAILED)
)
VIP_THANKS = VipThanks()
ABOVE_THE_LINE = AboveTheLine()
CAMPAIGNS = Campaigns()

PROGRAMMES: tuple[Programme[Any], ...] = (
    REMEDIATION,
    VIP_THANKS,
    ABOVE_THE_LINE,
    CAMPAIGNS,
    Welcome(),
    Milestones(),
    CrossSell(),
    Winback(),
    PIVOT_CARE,
    EmailEngagement(),
)
