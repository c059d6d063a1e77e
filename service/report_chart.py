"""The programme report as one self-contained HTML page. Per ladder (or programme): the
recovery rate of treated and control customers by step, with 95% intervals; what the
steps cost against the incremental revenue they brought, step by step; and the report's
table. plotly.js is inlined from the installed package, so the page works offline and
loads nothing from elsewhere.
"""

from __future__ import annotations

import functools
import html
import itertools
from collections.abc import Sequence
from datetime import datetime

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from service.offer_report import OfferArmReport
from service.reports import COLUMNS, FOOTNOTE, Group, ProgrammeReport, StepReport, cells
from service.uplift import wilson

NOT_ENOUGH = "not enough data"
TREATED, CONTROL = "#2563eb", "#94a3b8"
COST, REVENUE = "#dc2626", "#059669"
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif'
EXPLANATION = (
    "Treated customers were sent each step. Control customers, held back from the "
    "programme at random, were recorded as if sent but sent nothing, and are measured "
    "alike: what the treated gain over them is what the engagement achieved."
)


def _styled(fig: go.Figure, height: int = 420, **layout: object) -> go.Figure:
    """The page's one look for every chart; ``layout`` adds or overrides."""
    fig.update_layout(
        template="plotly_white",
        height=height,
        margin={"l": 64, "r": 24, "t": 48, "b": 24},
        bargap=0.3,
        font={"family": FONT, "size": 13, "color": "#0f172a"},
        legend={"orientation": "h", "x": 0, "y": -0.14},
        hoverlabel={"font": {"family": FONT}},
        **layout,
    )
    return fig


def figure(steps: Sequence[StepReport]) -> go.Figure:
    """One ladder's (or programme's) steps: recovery rates by step, then cumulative cost
    against cumulative incremental revenue."""
    labels = [f"{step.step} {step.step_name}" for step in steps]
    # The report's own rule: no interval, and no uplift, below the minimum per group.
    enough = [step.incremental_recovery_rate is not None for step in steps]
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=(
            "Recovery rate by step (95% intervals)",
            "Cumulative cost and incremental revenue",
        ),
    )
    for name, colour, groups in (
        ("treated", TREATED, [step.treated for step in steps]),
        ("control", CONTROL, [step.control for step in steps]),
    ):
        fig.add_trace(_recovery(name, colour, labels, groups, enough), row=1, col=1)
    tops = [
        max(_top(step.treated, ok), _top(step.control, ok))
        for step, ok in zip(steps, enough, strict=True)
    ]
    for label, step, top in zip(labels, steps, tops, strict=True):
        rate = step.incremental_recovery_rate
        fig.add_annotation(
            x=label,
            y=top,
            yshift=12,
            showarrow=False,
            text=f"<b>{rate.value:+.1%}</b>" if rate else NOT_ENOUGH,
            font={"color": "#0f172a" if rate else "#64748b", "size": 12 if rate else 11},
            row=1,
            col=1,
        )
    cost, revenue = _cumulative(labels, steps)
    fig.add_trace(cost, row=1, col=2)
    fig.add_trace(revenue, row=1, col=2)
    for label, step in zip(labels, steps, strict=True):
        if step.incremental_revenue_per_customer is None:
            fig.add_annotation(
                x=label,
                y=0,
                yanchor="bottom",
                showarrow=False,
                text=NOT_ENOUGH,
                font={"color": "#64748b", "size": 11},
                row=1,
                col=2,
            )
    _styled(fig, barmode="group")
    # Room above the tallest bar for the uplift written over it.
    # (At most a little over 100%: a rate cannot pass it.)
    ceiling = min(max(tops) * 1.25, 1.15) or 1.0
    fig.update_yaxes(title_text="recovered", tickformat=".0%", range=[0, ceiling], row=1, col=1)
    fig.update_yaxes(
        title_text="cumulative, $", tickprefix="$", separatethousands=True, row=1, col=2
    )
    return fig


def _recovery(
    name: str, colour: str, labels: list[str], groups: list[Group], enough: list[bool]
) -> go.Bar:
    rates = [group.recovered / group.customers if group.customers else None for group in groups]
    low: list[float | None] = []
    high: list[float | None] = []
    hover = []
    for label, group, rate, ok in zip(labels, groups, rates, enough, strict=True):
        summary = f"{label}, {name}: {group.recovered} of {group.customers} recovered"
        if rate is not None and ok:
            lower, upper = wilson(group.recovered, group.customers)
            low.append(rate - lower)
            high.append(upper - rate)
            hover.append(f"{summary} ({rate:.1%}; 95%: {lower:.1%} to {upper:.1%})")
        else:
            low.append(None)
            high.append(None)
            hover.append(summary + ("" if ok else f"; {NOT_ENOUGH}"))
    return go.Bar(
        name=name,
        x=labels,
        y=rates,
        # A step without enough data shows its rates faded, and no interval.
        marker={"color": colour, "opacity": [1.0 if ok else 0.35 for ok in enough]},
        error_y={
            "type": "data",
            "symmetric": False,
            "array": high,
            "arrayminus": low,
            "color": "#334155",
            "thickness": 2,
            # No caps: plotly.js draws a missing interval (null) as one of zero length,
            # which would show as a stray cap.
            "width": 0,
        },
        hovertext=hover,
        hoverinfo="text",
    )


def _top(group: Group, enough: bool) -> float:
    """The height of a bar, with its interval when it has one."""
    if not group.customers:
        return 0.0
    if enough:
        return wilson(group.recovered, group.customers)[1]
    return group.recovered / group.customers


def _cumulative(labels: list[str], steps: Sequence[StepReport]) -> tuple[go.Scatter, go.Scatter]:
    """What the treated cost, and the revenue they brought over the control group
    (incremental revenue per customer times treated customers), summed step by step.
    The revenue line stops at the first step without enough data: a sum past it would
    pass noise off as a figure."""
    costs = list(itertools.accumulate(float(step.treated.cost) for step in steps))
    gained: list[float | None] = []
    hover = []
    total: float | None = 0.0
    for label, step in zip(labels, steps, strict=True):
        per = step.incremental_revenue_per_customer
        if total is None or per is None:
            total = None
            gained.append(None)
            hover.append(f"{label}: {NOT_ENOUGH}")
            continue
        total += per.value * step.treated.customers
        gained.append(total)
        hover.append(
            f"{label}: ${total:,.2f} so far; this step {per.value:+,.2f} per customer "
            f"(95%: {per.low:+,.2f} to {per.high:+,.2f}) for {step.treated.customers} treated"
        )
    cost = go.Scatter(
        name="cost",
        x=labels,
        y=costs,
        mode="lines+markers",
        line={"color": COST, "width": 2.5},
        hovertext=[
            f"{label}: ${spent:,.2f} spent so far"
            for label, spent in zip(labels, costs, strict=True)
        ],
        hoverinfo="text",
    )
    revenue = go.Scatter(
        name="incremental revenue",
        x=labels,
        y=gained,
        mode="lines+markers",
        line={"color": REVENUE, "width": 2.5},
        hovertext=hover,
        hoverinfo="text",
    )
    return cost, revenue


# One colour per offer, in the order a decision lists them.
OFFER_COLOURS = ("#2563eb", "#f59e0b", "#059669", "#9333ea", "#db2777")


def offers_figure(arms: Sequence[OfferArmReport]) -> go.Figure:
    """One decision's offers: each one's share of the sends week by week (where the
    learning moved), and each one's recovery rate with its 95% interval."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("Share of sends by week", "Recovery rate by offer (95% intervals)"),
    )
    for arm, colour in zip(arms, itertools.cycle(OFFER_COLOURS), strict=False):
        weeks = [f"{w.week:%Y-%m-%d}" for w in arm.weeks]
        fig.add_trace(
            go.Bar(
                name=arm.offer_id,
                legendgroup=arm.offer_id,
                x=weeks,
                y=[w.share for w in arm.weeks],
                marker={"color": colour},
                hovertext=[
                    f"week of {week}: {arm.offer_id} {w.sent} sends, {w.share:.0%}"
                    for week, w in zip(weeks, arm.weeks, strict=True)
                ],
                hoverinfo="text",
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Bar(
                name=arm.offer_id,
                legendgroup=arm.offer_id,
                showlegend=False,
                x=[arm.offer_id],
                y=[arm.recovery_rate],
                marker={"color": colour},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": [arm.recovery_high - arm.recovery_rate],
                    "arrayminus": [arm.recovery_rate - arm.recovery_low],
                    "color": "#334155",
                    "thickness": 2,
                },
                hovertext=[
                    f"{arm.offer_id}: {arm.recovered} of {arm.sent} recovered "
                    f"({arm.recovery_rate:.1%}; 95%: {arm.recovery_low:.1%} to "
                    f"{arm.recovery_high:.1%})"
                ],
                hoverinfo="text",
            ),
            row=1,
            col=2,
        )
    # Each week's shares stack to the whole; each offer has its own recovery bar.
    _styled(fig, barmode="stack")
    fig.update_yaxes(tickformat=".0%", range=[0, 1], row=1, col=1)
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", row=1, col=2)
    return fig


def weekly_figure(
    weeks: Sequence[int], flatlines: Sequence[int], spent: Sequence[float]
) -> go.Figure:
    """A run week by week: flatlines (silence ladders started) and the spend so far."""
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=("Flatlines by week", "Spend so far"),
    )
    fig.add_trace(
        go.Bar(name="flatlines", x=list(weeks), y=list(flatlines), marker={"color": TREATED}),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            name="spent",
            x=list(weeks),
            y=list(spent),
            mode="lines",
            line={"color": COST, "width": 2.5},
        ),
        row=1,
        col=2,
    )
    _styled(fig, showlegend=False)
    fig.update_xaxes(title_text="week")
    fig.update_yaxes(tickprefix="$", separatethousands=True, row=1, col=2)
    return fig


def roc_figure(points: Sequence[tuple[float, float]], auc: float) -> go.Figure:
    """A score's ROC curve (false positive rate, true positive rate), and chance."""
    fig = go.Figure(
        [
            go.Scatter(
                name=f"silence score (AUC {auc:.3f})",
                x=[fpr for fpr, _ in points],
                y=[tpr for _, tpr in points],
                mode="lines",
                line={"color": TREATED, "width": 2.5},
            ),
            go.Scatter(
                name="chance",
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"color": CONTROL, "dash": "dash"},
            ),
        ]
    )
    return _styled(
        fig,
        height=380,
        xaxis={"title": {"text": "false positive rate (flagged, came back)"}, "range": [0, 1]},
        yaxis={"title": {"text": "true positive rate (flagged, stayed silent)"}, "range": [0, 1]},
    )


def page(
    report: ProgrammeReport,
    title: str = "Programme report",
    about: str | None = None,
    charts: Sequence[tuple[str, go.Figure]] = (),
) -> str:
    """The whole page: title, when (or ``about``), what treated and control mean, any
    ``charts`` (heading, figure), then per ladder (or programme) its charts over its
    table, and per learned decision its offers."""
    by_cause = itertools.groupby(report.steps, key=lambda step: step.cause)
    by_decision = itertools.groupby(report.offers, key=lambda arm: arm.decision)
    sections = [
        *(
            _chart_section(f"lead-{index}", heading, fig)
            for index, (heading, fig) in enumerate(charts)
        ),
        *(_section(index, cause, list(steps)) for index, (cause, steps) in enumerate(by_cause)),
        *(
            _offers_section(index, decision, list(arms))
            for index, (decision, arms) in enumerate(by_decision)
        ),
    ]
    since = f"engagements sent since {_moment(report.since)}" if report.since else "all engagements"
    about = about or f"Generated {_moment(report.generated_at)}, {since}"
    scripts = f"<script>{_plotly_js()}</script>\n<script>{_DRAW}</script>" if sections else ""
    body = "\n".join(sections) or "<p>No engagements yet.</p>"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
</head>
<body>
<main>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(about)}</p>
<p class="explain">{html.escape(EXPLANATION)}</p>
{body}
<p class="meta">{html.escape(FOOTNOTE)} Revenue is what purchases credited to a step (within
the attribution window of its last touch) brought in.</p>
</main>
{scripts}
</body>
</html>
"""


def _section(index: int, cause: str, steps: list[StepReport]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS[1:])
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells(step)[1:]) + "</tr>"
        for step in steps
    )
    # plotly's JSON escapes <, > and /: it cannot close the script element it sits in.
    return f"""<section>
<h2>{html.escape(cause)}</h2>
<div class="chart" id="chart-{index}"></div>
<script type="application/json" data-chart="chart-{index}">{figure(steps).to_json()}</script>
<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>
</section>"""


def _chart_section(chart_id: str, heading: str, fig: go.Figure) -> str:
    return f"""<section>
<h2>{html.escape(heading)}</h2>
<div class="chart" id="{chart_id}"></div>
<script type="application/json" data-chart="{chart_id}">{fig.to_json()}</script>
</section>"""


def _offers_section(index: int, decision: str, arms: list[OfferArmReport]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(arm.offer_id)}</td><td>{arm.sent}</td><td>{arm.recovered}</td>"
        f"<td>{arm.recovery_rate:.1%} ({arm.recovery_low:.1%} to {arm.recovery_high:.1%})</td>"
        "</tr>"
        for arm in arms
    )
    return f"""<section>
<h2>Offers that learn: {html.escape(decision)}</h2>
<div class="chart" id="offers-{index}"></div>
<script type="application/json" data-chart="offers-{index}">{offers_figure(arms).to_json()}</script>
<table><thead><tr><th>offer</th><th>sent</th><th>recovered</th><th>recovery rate</th></tr>
</thead><tbody>{rows}</tbody></table>
</section>"""


def _moment(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


@functools.cache
def _plotly_js() -> str:
    script: str = get_plotlyjs()
    return script


_DRAW = """
for (const source of document.querySelectorAll("script[data-chart]")) {
  const figure = JSON.parse(source.textContent);
  Plotly.newPlot(source.dataset.chart, figure.data, figure.layout,
                 {displaylogo: false, responsive: true});
}
"""

_STYLE = """
body { margin: 0; background: #f8fafc; color: #0f172a;
       font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1200px; margin: 0 auto; padding: 28px 40px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 4px; }
.meta { color: #475569; margin: 0 0 6px; }
.explain { margin: 0 0 8px; max-width: 900px; }
section { background: #fff; border: 1px solid #e2e8f0; border-radius: 8px;
          padding: 18px 24px; margin: 20px 0; }
.chart { height: 420px; }
table { border-collapse: collapse; width: 100%; margin-top: 12px; font-size: 13px;
        font-variant-numeric: tabular-nums; }
th, td { padding: 6px 8px; border-bottom: 1px solid #e2e8f0; text-align: right;
         white-space: nowrap; }
th { color: #334155; font-weight: 600; white-space: normal; vertical-align: bottom; }
th:first-child, td:first-child { text-align: left; }
"""
