"""``equator simulate --sweep NAME=V1,V2,…``: the same population run once per value of
one journey setting, and a table of what each did. This is how ladders and windows get
tuned: ``--sweep silence_multiplier=1.5,2,3``, ``--sweep alive.threshold=0.3,0.5,0.7``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError

from starter.history import SilenceCheck
from starter.simulation import SimulationResult
from workflows.config import JourneyConfig


class SweepError(ValueError):
    pass


class SweepRow(BaseModel):
    setting: str
    value: str
    flatlines: int
    engagements: int
    spent: Decimal
    # Credited engagements (a customer may count at several steps) and their revenue.
    recoveries: int
    revenue: Decimal
    silence: SilenceCheck | None = None


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """``name=v1,v2`` into the setting's dotted name and its values."""
    name, equals, values = text.partition("=")
    listed = [v.strip() for v in values.split(",") if v.strip()]
    if not equals or not name.strip() or len(listed) < 2:
        raise SweepError(f"--sweep takes NAME=V1,V2[,…] (two values at least), not {text!r}")
    return name.strip(), listed


def with_setting(config: JourneyConfig, name: str, value: str) -> JourneyConfig:
    """``config`` with the setting at the dotted ``name`` set to ``value``, checked as
    the configuration checks it."""
    data: dict[str, Any] = config.model_dump()
    *parents, last = name.split(".")
    node = data
    for part in parents:
        child = node.get(part)
        if not isinstance(child, dict):
            raise SweepError(f"no setting {name!r} (the journey's settings: README)")
        node = child
    if last not in node:
        raise SweepError(f"no setting {name!r} (the journey's settings: README)")
    node[last] = value
    try:
        return JourneyConfig.model_validate(data)
    except ValidationError as err:
        faults = "; ".join(str(e["msg"]) for e in err.errors(include_url=False))
        raise SweepError(f"{name}={value}: {faults}") from None


def row(name: str, value: str, result: SimulationResult, silence: SilenceCheck | None) -> SweepRow:
    steps = result.report.steps
    return SweepRow(
        setting=name,
        value=value,
        flatlines=sum(week.flatlines for week in result.weeks),
        engagements=result.engagements,
        spent=result.spent,
        recoveries=sum(step.treated.recovered for step in steps),
        revenue=sum((step.treated.revenue for step in steps), Decimal(0)),
        silence=silence,
    )


def sweep_table(rows: list[SweepRow]) -> str:
    """One line per value, for a terminal."""
    checked = any(r.silence for r in rows)
    head = ["setting", "flatlines", "engagements", "spent", "recoveries", "revenue"]
    if checked:
        head += ["precision", "recall", "came back anyway", "AUC"]
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    for r in rows:
        cells = [
            f"{r.setting}={r.value}",
            str(r.flatlines),
            str(r.engagements),
            f"${r.spent:,.2f}",
            str(r.recoveries),
            f"${r.revenue:,.2f}",
        ]
        if checked and r.silence is not None:
            s = r.silence
            cells += [
                _share(s.precision),
                _share(s.recall),
                str(s.came_back_anyway),
                "—" if s.auc is None else f"{s.auc:.3f}",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _share(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"
