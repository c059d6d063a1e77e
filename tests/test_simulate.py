"""``equator simulate``: personas as data, a member's life drawn from the seed, and small
populations through the real journeys on the time-skipping server, whose report must
agree with what the journeys did and come out the same twice."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from activities.store import Store
from starter.history import (
    WRITTEN_FROM,
    HistoryError,
    HistoryPopulation,
    SilenceCheck,
    check_silence,
    load_history,
    roc,
    silence_score,
    write_history,
)
from starter.personas import (
    Persona,
    PersonaError,
    PersonaPopulation,
    Personas,
    Spread,
    life,
    load_personas,
)
from starter.simulation import SimulationResult, simulate
from starter.sweep import SweepError, parse_sweep, with_setting
from tests.journeys import NEVER_QUIET, NO_HOLDOUTS
from tests.servers import equator
from workflows.bandit import LearningRules
from workflows.config import JourneyConfig

ONE_TIME = Persona(
    name="one-time",
    count=8,
    starts_within=0,
    gap_days=Spread(mean=30),
    basket=Spread(mean=50),
    churn=1.0,
)
STEADY = Persona(
    name="steady",
    count=4,
    starts_within=0,
    gap_days=Spread(mean=7),
    basket=Spread(mean=40, sd=10),
    categories=("basics", "knitwear"),
)
# A silence window of 30 days whatever the cadence; no holdouts, no learning: every
# figure below follows from the personas alone.
CONFIG = JourneyConfig(
    contact=NEVER_QUIET.model_copy(update={"marketing_cap": 10}),
    enabled=frozenset({"remediation"}),
    holdouts=NO_HOLDOUTS,
    learning=LearningRules(enabled=False),
    silence_min=timedelta(days=30),
)


def test_a_members_life_is_drawn_from_the_seed_and_its_name() -> None:
    steady = STEADY.model_copy(update={"gap_days": Spread(mean=7, sd=2)})
    first = life("steady-00001", steady, 90, seed=1)
    assert life("steady-00001", steady, 90, seed=1) == first
    assert life("steady-00002", steady, 90, seed=1) != first
    assert life("steady-00001", steady, 90, seed=2) != first
    assert all(order.type == "purchase" for order in first)
    assert 9 <= len(first) <= 16  # about every 7 days for 90 days
    assert [order.day for order in first] == sorted(order.day for order in first)
    # A one-time buyer buys once.
    assert [order.type for order in life("one-time-00000", ONE_TIME, 365, 1)] == ["purchase"]


def test_answers_match_by_offer_then_step_then_anything() -> None:
    persona = STEADY.model_copy(update={"responds": {"pct10": 0.3, "we miss you": 0.1, "*": 0.02}})
    assert persona.answer_chance("pct10", "an offer") == 0.3
    assert persona.answer_chance(None, "we miss you") == 0.1
    assert persona.answer_chance("five-off", "an offer") == 0.02
    assert STEADY.answer_chance("pct10", "an offer") == 0


def test_the_mix_scales_to_a_number_of_customers() -> None:
    mix = Personas(personas=(ONE_TIME, STEADY)).scaled(120)
    assert [p.count for p in mix.personas] == [80, 40]
    assert [p.count for p in Personas(personas=(ONE_TIME, STEADY)).scaled(1).personas] == [1, 1]


def test_a_personas_file_says_what_is_wrong_where(tmp_path: Path) -> None:
    shipped = load_personas(Path("personas.toml"))
    assert {"steady", "lapsing", "one-time", "penny"} <= {p.name for p in shipped.personas}
    bad = tmp_path / "bad.toml"
    bad.write_text('[[personas]]\nname = "x"\ncount = 0\ngap_days = { mean = 5 }\n')
    with pytest.raises(PersonaError) as caught:
        load_personas(bad)
    assert "personas[0] (x).count: Input should be greater than or equal to 1" in str(caught.value)
    assert "personas[0] (x).basket: Field required" in str(caught.value)
    bad.write_text("[[personas]\n")
    with pytest.raises(PersonaError, match="not valid TOML"):
        load_personas(bad)


async def run(seed: int, progress: Callable[[float], None] | None = None) -> SimulationResult:
    population = PersonaPopulation(Personas(personas=(ONE_TIME, STEADY)))
    result, _ = await simulate(population, 75, seed, CONFIG, progress=progress)
    return result


async def test_a_population_runs_through_the_journeys_and_the_same_seed_runs_the_same() -> None:
    reached: list[float] = []
    result = await run(seed=4, progress=reached.append)
    assert result.customers == {"one-time": 8, "steady": 4}
    # Progress is the journeys' clock, tick by tick: it only moves on.
    assert reached == sorted(reached)
    assert reached[-1] == 75
    steps = {(s.cause, s.step_name): s for s in result.report.steps}
    # Each one-time buyer goes silent 30 days after buying and climbs the silence ladder;
    # the steady buyers never do. Nobody answers: none recovers.
    first = steps["silence", "we miss you"]
    assert (first.treated.customers, first.control.customers) == (8, 0)
    assert first.treated.recovered == 0
    assert sum(week.flatlines for week in result.weeks) == 8
    assert [w.week for w in result.weeks if w.flatlines] == [5]  # day 30: week 5
    # Every engagement was a remediation step, and the spend adds up.
    assert result.engagements == sum(s.treated.customers for s in result.report.steps)
    assert result.spent == sum((s.treated.cost for s in result.report.steps), Decimal(0))
    assert result.events_sent == 8 + sum(
        len(life(f"steady-{n:05d}", STEADY, 75, 4)) for n in range(4)
    )

    again = await run(seed=4)
    assert again.model_dump(exclude={"seconds", "report"}) == result.model_dump(
        exclude={"seconds", "report"}
    )
    assert again.report.steps == result.report.steps


def pennies(path: Path) -> None:
    """A personas file of three customers who buy once, at once."""
    path.write_text(
        '[[personas]]\nname = "penny"\ncount = 3\nstarts_within = 0\nchurn = 1.0\n'
        "gap_days = { mean = 30 }\nbasket = { mean = 40 }\n"
    )


async def test_equator_simulate_prints_json_alone_on_stdout(tmp_path: Path) -> None:
    personas = tmp_path / "personas.toml"
    pennies(personas)
    code, out, err = await equator(
        "simulate", "--personas", str(personas), "--days", "40", "--seed", "2", "--json",
        environment={},
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["customers"] == {"penny": 3}
    assert result["seed"] == 2


def test_a_history_file_is_read_and_refused_with_its_line(tmp_path: Path) -> None:
    good = tmp_path / "history.csv"
    good.write_text(
        "customer_id,occurred_at,amount,category\n"
        "c2,2025-03-02T10:00:00+00:00,20.00,\n"
        "c1,2025-03-01T10:00:00+01:00,35.50,shoes\n"
    )
    first, second = load_history(good)
    assert (first.customer_id, first.amount, first.category) == ("c1", Decimal("35.50"), "shoes")
    assert second.category is None
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,occurred_at,amount\nc1,2025-03-01T10:00:00,12\n")
    with pytest.raises(HistoryError, match=r"bad.csv, line 2: occurred_at: .*timezone"):
        load_history(bad)


def test_the_silence_score_and_its_roc() -> None:
    config = JourneyConfig()
    day = timedelta(days=1)
    at = datetime(2025, 6, 1, tzinfo=UTC)
    # Every 10 days: a window of 30; 15 days silent is half way.
    times = [at - 15 * day - n * 10 * day for n in range(4)]
    assert silence_score(times, at, config) == pytest.approx(0.5)
    points, auc = roc({"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.5}, positive={"a", "c"})
    assert [(p.false_positive_rate, p.true_positive_rate) for p in points] == [
        (0, 0), (0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0),
    ]  # fmt: skip
    assert auc == pytest.approx(0.75)
    assert roc({"a": 1.0}, positive={"a"}) == ([], None)


async def test_a_cut_history_checks_silence_detection_against_what_came_after(
    tmp_path: Path,
) -> None:
    """A few hundred customers whose truth is known: steady buyers keep buying after the
    cut, one-time buyers never come back."""
    history = tmp_path / "history.csv"
    once = ONE_TIME.model_copy(update={"count": 150, "starts_within": 30})
    steady = STEADY.model_copy(update={"count": 100, "starts_within": 7})
    population = PersonaPopulation(Personas(personas=(once, steady)))
    assert write_history(history, population, days=120, seed=2) > 1_500
    purchases = load_history(history)
    cut = WRITTEN_FROM + 75 * timedelta(days=1)
    replay = HistoryPopulation(purchases, cut)

    async def checked(store: Store) -> SilenceCheck:
        return await check_silence(store, purchases, replay, timedelta(days=30), CONFIG)

    result, check = await simulate(replay, replay.cut_day, 1, CONFIG, check=checked)
    assert check is not None
    assert result.customers == {"history": 250}
    # The one-time buyers flatlined 30 days after buying, and bought nothing after the cut.
    assert (check.customers, check.truly_silent, check.flagged) == (250, 150, 150)
    assert (check.precision, check.recall, check.came_back_anyway) == (1.0, 1.0, 0)
    assert check.silence_spend > 0
    assert check.auc == 1.0


async def test_split_into_batches_a_run_comes_out_the_same() -> None:
    """Each customer's journey depends on no other's (learning is off here): played
    whole, in three batches one after another, or three batches two at a time."""
    population = PersonaPopulation(Personas(personas=(ONE_TIME, STEADY)))
    alone, _ = await simulate(population, 40, 5, CONFIG)
    reached: list[float] = []
    for processes in (1, 2):
        split, _ = await simulate(
            population, 40, 5, CONFIG, processes=processes, batch=4, progress=reached.append
        )
        assert split.model_dump(exclude={"seconds", "report"}) == alone.model_dump(
            exclude={"seconds", "report"}
        )
        assert split.report.steps == alone.report.steps
        # The batches' average day: it climbs to the end once, batch after batch (in
        # turn, every tick of the first batch is heard; in processes, the watch samples
        # four times a second, which a short run may outpace).
        assert reached == sorted(reached)
        assert reached[-1] == 40
        if processes == 1:
            assert any(0 < day < 40 / 3 for day in reached)
        reached.clear()


def test_a_sweep_names_a_setting_and_its_values() -> None:
    assert parse_sweep("silence_multiplier=1.5, 2,3") == ("silence_multiplier", ["1.5", "2", "3"])
    for bad in ("silence_multiplier", "silence_multiplier=2", "=1,2"):
        with pytest.raises(SweepError, match="two values at least"):
            parse_sweep(bad)
    assert with_setting(JourneyConfig(), "silence_multiplier", "1.5").silence_multiplier == 1.5
    nested = with_setting(JourneyConfig(), "contact.marketing_cap", "9")
    assert nested.contact.marketing_cap == 9
    with pytest.raises(SweepError, match="no setting 'silence_multiplyer'"):
        with_setting(JourneyConfig(), "silence_multiplyer", "2")
    with pytest.raises(SweepError, match=r"no setting 'alive\.threshold'"):
        with_setting(JourneyConfig(), "alive.threshold", "0.5")  # no model configured
    with pytest.raises(SweepError, match="silence_multiplier=-1: Input should be greater than 0"):
        with_setting(JourneyConfig(), "silence_multiplier", "-1")


async def test_equator_simulate_sweeps_a_setting(tmp_path: Path) -> None:
    personas = tmp_path / "personas.toml"
    pennies(personas)
    code, out, err = await equator(
        "simulate", "--personas", str(personas), "--days", "45", "--json",
        "--sweep", "silence_default=P20D,P40D",
        environment={},
    )  # fmt: skip
    assert code == 0, err
    early, late = json.loads(out)
    assert (early["value"], late["value"]) == ("P20D", "P40D")
    # Silent at day 20 or 40: both flatline within 45 days, the first climbs further.
    assert early["flatlines"] == late["flatlines"] == 3
    assert early["engagements"] > late["engagements"]
