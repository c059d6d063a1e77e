"""The journey as ops read it in the Temporal UI: where the customer stands and why."""

from __future__ import annotations

from workflows.rules import money, steps_of
from workflows.state import JourneyView


def current_details(view: JourneyView) -> str:
    state = view.state
    lines = [
        f"**{state.customer_id}** is **{state.line_position.value}** the line"
        + (" (dormant)" if state.dormant else ""),
        "",
        f"- lifetime value {money(state.profile.lifetime_value)}, "
        f"{state.profile.order_count} orders, {state.profile.loyalty_points} points"
        + (f", cohort **{state.cohort.value}**" if state.cohort else ""),
    ]
    if state.wallet:
        redeemed = sum(held.redeemed_at is not None for held in state.wallet)
        lines.append(f"- offers made {len(state.wallet)}, redeemed {redeemed}")
    if state.paused:
        lines.append(f"- **paused** by {state.paused_by}: nothing goes out until resumed")
    run = state.ladder
    if run is not None:
        lines.append(
            f"- climbing the **{run.cause.value}** ladder: step {run.step + 1} of "
            f"{len(steps_of(run))}, spent {money(run.spent)} of {money(run.ceiling)}"
        )
    why = next((entry for entry in reversed(state.timeline) if entry.kind != "event"), None)
    if why is not None:
        lines.append(f"- last change: {why.summary}")
    when = view.next_action_at.isoformat() if view.next_action_at else "on the next event"
    lines.append(f"- next: {view.next_action} at {when}")
    return "\n".join(lines)


def for_temporal_ui(markdown: str) -> str:
    """The UI's markdown reads ``$…$`` as mathematics: keep amounts as they are."""
    return markdown.replace("$", "\\$")
