"""The journey as ops read it in the Temporal UI: where the customer stands and why."""

from __future__ import annotations

from workflows.state import JourneyView, ProgrammeView
from workflows.timeline import money, when


def current_details(view: JourneyView) -> str:
    state = view.state
    lines = [
        f"**{state.customer_id}** is **{state.line_position.value}** the line",
        "",
        f"- lifetime value {money(state.profile.lifetime_value)}, "
        f"{state.profile.order_count} orders, {state.profile.loyalty_points} points"
        + (f", cohort **{state.cohort.value}**" if state.cohort else ""),
    ]
    if state.paused:
        lines.append(f"- **paused** by {state.paused_by}: nothing goes out until resumed")
    for programme in view.programmes:
        said = [part for part in (programme.standing, _waits(programme)) if part]
        if said:
            lines.append(f"- **{programme.name}**: " + "; ".join(said))
    why = next((entry for entry in reversed(state.timeline) if entry.kind != "event"), None)
    if why is not None:
        lines.append(f"- last change: {why.summary}")
    when = view.next_action_at.isoformat() if view.next_action_at else "on the next event"
    lines.append(f"- next: {view.next_action} at {when}")
    return "\n".join(lines)


def _waits(programme: ProgrammeView) -> str | None:
    if programme.next_action is None or programme.next_action_at is None:
        return None
    return f"next: {programme.next_action} at {when(programme.next_action_at)}"


def for_temporal_ui(markdown: str) -> str:
    """The UI's markdown reads ``$…$`` as mathematics: keep amounts as they are."""
    return markdown.replace("$", "\\$")
