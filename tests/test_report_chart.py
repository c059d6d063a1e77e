"""The report's page, from hand-made steps: the charts carry the report's figures, and the
page is whole on its own."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from service.offer_report import fold
from service.report_chart import NOT_ENOUGH, figure, offers_figure, page
from service.reports import Group, Interval, ProgrammeReport, StepReport
from service.uplift import wilson

AT = datetime(2026, 11, 24, 10, 30, tzinfo=UTC)


def step(
    number: int,
    name: str,
    treated: tuple[int, int, str],
    control: tuple[int, int],
    uplift: tuple[Interval, Interval] | None,
    cause: str = "silence",
) -> StepReport:
    """A step's report: (customers, recovered, cost) treated, (customers, recovered)
    control, and the incremental recovery rate and revenue per customer, if any."""
    customers, recovered, cost = treated
    return StepReport(
        cause=cause,
        step=number,
        step_name=name,
        treated=Group(customers=customers, recovered=recovered, cost=Decimal(cost)),
        control=Group(customers=control[0], recovered=control[1]),
        cost_per_recovered=Decimal(cost) / recovered if recovered else None,
        incremental_recovery_rate=uplift[0] if uplift else None,
        incremental_revenue_per_customer=uplift[1] if uplift else None,
    )


STEPS = [
    step(1, "we miss you", (60, 18, "3.00"), (40, 4), (Interval(value=0.2, low=0.035, high=0.339),
                                                       Interval(value=10, low=3.05, high=16.95))),
    step(2, "10% offer", (100, 20, "200.00"), (50, 5), (Interval(value=0.1, low=-0.02, high=0.2),
                                                        Interval(value=4, low=-1, high=9))),
    step(3, "free shipping", (5, 1, "30.00"), (2, 0), None),
]  # fmt: skip
LABELS = ["1 we miss you", "2 10% offer", "3 free shipping"]


def test_recovery_bars_carry_each_groups_rate_and_its_interval_where_there_is_data() -> None:
    treated, control, *_ = figure(STEPS).to_dict()["data"]

    assert (treated["type"], treated["name"], list(treated["x"])) == ("bar", "treated", LABELS)
    assert list(treated["y"]) == [0.3, 0.2, 0.2]
    assert list(control["y"]) == [0.1, 0.1, 0.0]
    low, high = wilson(18, 60)
    assert treated["error_y"]["array"][0] == pytest.approx(high - 0.3)
    assert treated["error_y"]["arrayminus"][0] == pytest.approx(0.3 - low)
    # Step 3 has 5 and 2 customers: no interval, faded bars.
    assert treated["error_y"]["array"][2] is None
    assert list(treated["marker"]["opacity"]) == [1.0, 1.0, 0.35]
    assert "18 of 60 recovered (30.0%; 95%:" in treated["hovertext"][0]
    assert treated["hovertext"][2].endswith(NOT_ENOUGH)


def test_cumulative_cost_against_incremental_revenue_stops_where_data_does() -> None:
    *_, cost, revenue = figure(STEPS).to_dict()["data"]

    assert (cost["name"], list(cost["x"])) == ("cost", LABELS)
    assert list(cost["y"]) == [3.0, 203.0, 233.0]
    # Incremental revenue per customer times treated customers: 10 * 60, then 4 * 100.
    assert list(revenue["y"]) == [600.0, 1000.0, None]
    assert (
        "this step +4.00 per customer (95%: -1.00 to +9.00) for 100 treated"
        in (revenue["hovertext"][1])
    )


def test_the_uplift_is_written_over_each_step_or_not_enough_data() -> None:
    annotations = [a["text"] for a in figure(STEPS).to_dict()["layout"]["annotations"]]
    assert annotations.count("<b>+20.0%</b>") == 1
    assert annotations.count("<b>+10.0%</b>") == 1
    # Over step 3 in each chart.
    assert annotations.count(NOT_ENOUGH) == 2


def charts(html: str) -> list[dict[str, Any]]:
    found = re.findall(
        r'<script type="application/json" data-chart="[a-z]+-\d+">(.*?)</script>', html
    )
    return [json.loads(chart) for chart in found]


def test_the_page_holds_a_chart_and_a_table_per_ladder_and_plotly_itself() -> None:
    other = step(1, "apology <b>", (40, 10, "2.00"), (35, 5), None, cause="complaint")
    report = ProgrammeReport(generated_at=AT, since=None, steps=[other, *STEPS])
    html = page(report)

    complaint, silence = charts(html)
    assert complaint["data"][0]["x"] == ["1 apology <b>"]
    assert silence["data"][0]["y"] == [0.3, 0.2, 0.2]
    assert silence["data"][3]["y"] == [600.0, 1000.0, None]
    assert html.index("<h2>complaint</h2>") < html.index("<h2>silence</h2>")
    # The table: the terminal's figures, escaped.
    assert "<td>1 apology &lt;b&gt;</td>" in html
    assert "<td>18 vs 4</td><td>$0.00</td><td>$3.00</td><td>$0.17</td>" in html
    assert "<td>+20.0% (+3.5% to +33.9%)</td><td>+10.00 (+3.05 to +16.95)</td>" in html
    assert "Generated 2026-11-24 10:30 UTC, all engagements" in html
    assert "Treated customers were sent each step" in html
    # Works offline: plotly.js is in the page, and nothing is fetched.
    assert "plotly.js v" in html
    assert "<script src" not in html
    assert "<link" not in html


def test_an_empty_report_says_so_without_plotly() -> None:
    html = page(ProgrammeReport(generated_at=AT, since=AT, steps=[]))
    assert "No engagements yet." in html
    assert "engagements sent since 2026-11-24 10:30 UTC" in html
    assert "plotly.js" not in html


OFFERS = fold(
    [
        ("silence/an offer", "five-off", date(2026, 11, 16), 5, 1),
        ("silence/an offer", "pct10", date(2026, 11, 16), 5, 0),
        ("silence/an offer", "five-off", date(2026, 11, 23), 9, 3),
        ("silence/an offer", "pct10", date(2026, 11, 23), 1, 0),
    ]
)


def test_the_offers_chart_shows_each_offers_weekly_share_and_recovery() -> None:
    five_off_weeks, five_off_rate, pct10_weeks, pct10_rate = offers_figure(OFFERS).to_dict()["data"]
    assert (five_off_weeks["name"], list(five_off_weeks["x"])) == (
        "five-off",
        ["2026-11-16", "2026-11-23"],
    )
    assert list(five_off_weeks["y"]) == [0.5, 0.9]
    assert list(pct10_weeks["y"]) == [0.5, 0.1]
    assert (list(five_off_rate["x"]), list(five_off_rate["y"])) == (["five-off"], [4 / 14])
    low, high = wilson(4, 14)
    assert five_off_rate["error_y"]["array"][0] == pytest.approx(high - 4 / 14)
    assert five_off_rate["error_y"]["arrayminus"][0] == pytest.approx(4 / 14 - low)
    assert list(pct10_rate["y"]) == [0.0]


def test_the_page_has_a_section_per_learned_decision() -> None:
    html = page(ProgrammeReport(generated_at=AT, since=None, steps=STEPS, offers=OFFERS))
    _, offers = charts(html)
    assert [trace["name"] for trace in offers["data"]] == ["five-off"] * 2 + ["pct10"] * 2
    assert "<h2>Offers that learn: silence/an offer</h2>" in html
    assert "<td>five-off</td><td>14</td><td>4</td><td>28.6% (" in html
