"""Every ``workflow.patched`` id the journey uses, in one place.

Journeys live for years, so a change in the commands a journey issues goes behind a
patch: a journey that began before it replays its history without it and keeps
behaving as it did, a new one (or a new run after continue-as-new) gets the change.

Retiring a patch, once no running journey can still replay the code path without it
(every journey started before it has continued as new or ended; a list query on
``TemporalChangeVersion`` tells), takes two releases:

1. replace ``journey.patched(P)`` by ``workflow.deprecate_patch(P)`` and drop the old
   path: histories that have the marker still replay, new runs write it no more;
2. once no history with the marker can replay any more, drop the deprecation too.

| patch | since | what it changed | retire |
| --- | --- | --- | --- |
| ``contact-policy`` | 0.1 | steps ask the contact policy (consent, caps, quiet hours) | 1 now |
| ``vip-care`` | 0.1 | VIP care: a ticket before marketing, thanks for feedback | 1 now |
| ``above-the-line`` | 0.1 | offers to customers above the line | 1 now |
| ``engagement-outcomes`` | 0.1 | engagement outcomes filed in the store | 1 now |
| ``search-attributes`` | 0.1 | search attributes kept current | 1 now |
| ``campaigns`` | 0.1 | the ``campaign`` signal | 1 now |
| ``release-0.2`` | 0.2 | everything 0.2 changed (below) | 0.3 |
| ``erasure-unindexed`` | after 0.2 | erased: search attributes unset but ``CustomerId`` | 0.4 |
| ``operator-audit`` | after 0.2 | operator actions applied are filed in the audit | 0.4 |
| ``feed-outages`` | after 0.2 | a flatline first asks the feed's outages within the silence | 0.4 |
| ``drain-before-time`` | after 0.2 | events in during a write apply before time acts | 0.4 |

A run that began on 0.2 has every patch before it: the journey asks ``release-0.2``
first and, when the run has it, asks nothing older (``has_patch``). One marker and one
``TemporalChangeVersion`` upsert a run instead of one of each per patch; runs that began
on 0.1 answer ``release-0.2`` with no and ask the rest as they always did.

``release-0.2`` brought the programmes added in 0.2 (welcome, milestones, cross-sell,
winback, pivot care, email engagement), care and thanks for pivot care's cohorts, tickets
outside the marketing cap, the ledger write and the engagement send as local
activities, holdouts and credit, ladders won only by a recovery, and offers that learn.

"1 now" means the code is ready for it; it is taken when ops confirm that no
journey started before 0.1 still runs.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum


class Patch(StrEnum):
    CONTACT_POLICY = "contact-policy"
    VIP_CARE = "vip-care"
    ABOVE_THE_LINE = "above-the-line"
    ENGAGEMENT_OUTCOMES = "engagement-outcomes"
    SEARCH_ATTRIBUTES = "search-attributes"
    CAMPAIGNS = "campaigns"
    # Everything 0.2 changed for running journeys: one marker a run, not one a change.
    RELEASE_0_2 = "release-0.2"
    # Newer than the release, so asked by itself (``workflow.patched``, not ``has_patch``):
    # a 0.2 journey erased before it replays without the upsert.
    ERASURE_UNINDEXED = "erasure-unindexed"
    OPERATOR_AUDIT = "operator-audit"
    FEED_OUTAGES = "feed-outages"
    DRAIN_BEFORE_TIME = "drain-before-time"


# The release every older patch is part of (see ``has_patch``).
RELEASE = Patch.RELEASE_0_2

# Asked as every run of a journey that began on 0.1 starts, in this order (the markers'
# place in history is fixed); a run that began on 0.2 asks ``RELEASE`` only.
AT_START: tuple[Patch, ...] = (
    Patch.VIP_CARE,
    Patch.ABOVE_THE_LINE,
    Patch.ENGAGEMENT_OUTCOMES,
)


def has_patch(patch: Patch, patched: Callable[[Patch], bool]) -> bool:
    """Whether a run has ``patch``, asking ``patched`` (``workflow.patched``) as little as
    it can: a run that has the release has every patch, without a marker for each."""
    return patched(RELEASE) or patched(patch)
