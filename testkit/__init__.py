"""Equator's testing kit, for the project's tests and for yours.

- ``testkit.scenario``: journeys on Temporal's time-skipping server with a real worker
  and store; send events at simulated days, move the clock, read what was sent and when.
- ``testkit.moments``: programmes as pure functions, no server at all.
"""

from starter.devstack import time_skipping_server
from testkit.moments import apply, begun, ev
from testkit.scenario import (
    Scenario,
    Sent,
    deliveries,
    engagements,
    scenario,
)

__all__ = [
    "Scenario",
    "Sent",
    "apply",
    "begun",
    "deliveries",
    "engagements",
    "ev",
    "scenario",
    "time_skipping_server",
]
