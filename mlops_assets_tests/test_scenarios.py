"""Retraining automation on the scenarios it must survive, with the real daemon: the loan example's
days fed one at a time (`mlops_assets.demo.run_story`), every sensor on, and each scenario's
count of retraining runs, promotions and rollbacks, and its final champion, asserted.

The outcome table in docs/monitoring-and-retraining.md is this file's expectations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from mlops_assets.definitions import build_definitions
from mlops_assets.demo import Day, Retraining, run_story
from mlops_assets.settings import PlatformSettings
from mlops_assets_tests.conftest import edited_contracts
from mlops_assets_tests.warm_state import (
    STORY_ENVIRONMENT,
    copy_home,
    load_warm_up,
    story_home,
    warm_story_home,
)

CONTRACT = "loan_default"
SCENARIO_START = "2026-01-09"  # day 9: the first champion is trained on day 7
pytestmark = pytest.mark.slow


@dataclass
class Outcome:
    days: list[Day]
    retrainings: list[Retraining]
    rollbacks: list[Retraining]
    champion: str

    @property
    def promotions(self) -> list[Retraining]:
        return [r for r in self.retrainings if r.promoted]

    @property
    def monitored(self) -> list[Day]:
        return [day for day in self.days if day.drift_share is not None]

    def table(self) -> str:
        """The story as the demo prints it, for a failing assertion's message."""
        rows = []
        for day in self.days:
            share = "-" if day.drift_share is None else f"{day.drift_share:.3f}"
            served = "-" if day.served_metric is None else f"{day.served_metric:.3f}"
            rows.append(f"{day.day} drift {share} v{day.served_version} AUC {served}")
            rows += [
                f"  -> {r.trigger}: v{r.version} {r.promoted} {r.reason}" for r in day.retraining
            ]
        return "\n".join(rows)


def run_scenario(
    tmp_path: Path,
    monkeypatch,
    days: int,
    daemon_contracts: Path | None = None,
    storage: dict | None = None,
    request: pytest.FixtureRequest | None = None,
    **env: str,
) -> Outcome:
    """`days` days of the loan example from 2026-01-01 with the real daemon and every sensor
    on (drift, performance, rollback), under the scenario `env` sets. The daemon's code location
    (so every run the sensors launch) loads the loan contract's file, or `daemon_contracts`;
    with `storage`, the instance's `storage:` block replaces dagster.yaml's (SQLite). With
    `request` (and SQLite), the story starts from a copy of the session's warm-up
    (`warm_state.py`) instead of ingesting the warm-up days and training the first champion."""
    home = tmp_path / "home"
    story = {**STORY_ENVIRONMENT, **env}
    warm = None
    if request is not None and storage is None:
        copy_home(warm_story_home(request, story["MLOPS_SYNTHETIC_ROWS_PER_DAY"]), home)
        warm = load_warm_up(home)
    story.update(story_home(home, storage))
    # mlflow.set_tracking_uri exports MLFLOW_TRACKING_URI: an earlier test's store must not leak in
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name, value in story.items():
        monkeypatch.setenv(name, value)  # the daemon loads the code location from the environment
    settings = PlatformSettings.from_env()
    contract = next(c for c in settings.load_contracts() if c.name == CONTRACT)
    defs = build_definitions(settings)
    outcomes, first = run_story(
        settings,
        contract,
        day_names(days),
        defs=defs,
        html_reports=False,
        warm=warm,
        daemon_contracts=daemon_contracts,
    )
    assert first is not None and first.promoted and first.version == "1"
    assert all(day.success for day in outcomes), [day.day for day in outcomes if not day.success]
    launched = [r for day in outcomes for r in day.retraining]
    registry = defs.resources["mlflow"].model_of(contract)
    return Outcome(
        outcomes,
        [r for r in launched if r.trigger in ("drift", "performance")],
        [r for r in launched if r.trigger == "rollback" and r.promoted],
        str(registry.require_champion().version),
    )


def day_names(days: int) -> list[str]:
    start = date(2026, 1, 1)
    return [(start + timedelta(days=offset)).isoformat() for offset in range(days)]


def test_no_drift_for_30_days_at_low_volume_retrains_nothing(tmp_path, monkeypatch):
    """30 days without drift, at 300 rows a day (where Evidently's fixed thresholds alone call a
    column drifted on most days and three days' AUC moves by a few hundredths): no retraining,
    no rollback, and no drift report above the threshold."""
    outcome = run_scenario(tmp_path, monkeypatch, 30, MLOPS_SYNTHETIC_ROWS_PER_DAY="300")
    assert len(outcome.monitored) == 23, outcome.table()
    assert (len(outcome.retrainings), len(outcome.rollbacks), outcome.champion) == (0, 0, "1"), (
        outcome.table()
    )
    assert all(day.drift_share <= 0.2 for day in outcome.monitored), outcome.table()


def drifting(scenario: str, **env: str) -> dict[str, str]:
    return {"MLOPS_DRIFT_SCENARIO": scenario, "MLOPS_DRIFT_START": SCENARIO_START, **env}


def test_income_drop_retrains_once_and_drift_falls_back(tmp_path, monkeypatch, request):
    outcome = run_scenario(
        tmp_path, monkeypatch, request=request, days=13, **drifting("income_drop")
    )
    print(outcome.table())
    [retraining] = outcome.retrainings
    assert (retraining.trigger, retraining.promoted, retraining.since) == (
        "drift",
        True,
        SCENARIO_START,
    ), outcome.table()
    assert (outcome.rollbacks, outcome.champion) == ([], "2"), outcome.table()
    against_new = [day for day in outcome.monitored if day.reference_version == "2"]
    assert against_new and all(day.drift_share <= 0.2 for day in against_new), outcome.table()


def test_new_loan_purpose_retrains_once(tmp_path, monkeypatch, request):
    """A third of applications are a new purpose with larger amounts: two columns move."""
    outcome = run_scenario(
        tmp_path, monkeypatch, request=request, days=13, **drifting("new_loan_purpose")
    )
    print(outcome.table())
    assert [(r.trigger, r.promoted) for r in outcome.retrainings] == [("drift", True)], (
        outcome.table()
    )
    assert (outcome.rollbacks, outcome.champion) == ([], "2"), outcome.table()


def test_credit_score_shift_is_seen_but_not_retrained(tmp_path, monkeypatch, request):
    """Credit scores 70 points lower: the two credit columns drift (2 of 12: a share of 0.167,
    under the threshold), and nothing retrains. That is right: the same applicants default in
    the same way given their features, and the champion's live ROC AUC holds."""
    outcome = run_scenario(
        tmp_path, monkeypatch, request=request, days=12, **drifting("credit_score_shift")
    )
    shifted = [day for day in outcome.monitored if day.day >= SCENARIO_START]
    assert all(0 < day.drift_share <= 0.2 for day in shifted), outcome.table()
    assert (len(outcome.retrainings), len(outcome.rollbacks), outcome.champion) == (0, 0, "1"), (
        outcome.table()
    )
    assert all(day.served_metric > 0.7 for day in shifted)  # ROC AUC, outcome.table()


def test_concept_change_is_retrained_by_the_performance_sensor(tmp_path, monkeypatch, request):
    """Same applicants, more defaults: drift stays at 0 and the live labels tell."""
    outcome = run_scenario(
        tmp_path, monkeypatch, request=request, days=14, **drifting("concept_change")
    )
    print(outcome.table())
    assert all(day.drift_share <= 0.2 for day in outcome.monitored), outcome.table()
    [retraining] = outcome.retrainings
    assert (retraining.trigger, retraining.promoted) == ("performance", True), outcome.table()
    assert (outcome.rollbacks, outcome.champion) == ([], "2"), outcome.table()


def test_flapping_drift_with_three_consecutive_days_required_retrains_nothing(
    tmp_path, monkeypatch, request
):
    outcome = run_scenario(
        tmp_path,
        monkeypatch,
        16,
        request=request,
        **drifting("income_drop", MLOPS_DRIFT_EVERY="2", MLOPS_RETRAIN_CONSECUTIVE="3"),
    )
    drifted = [day.day for day in outcome.monitored if day.drift_share > 0.2]
    assert drifted == day_names(16)[8::2], outcome.table()  # every other day from day 9
    assert (len(outcome.retrainings), len(outcome.rollbacks), outcome.champion) == (0, 0, "1"), (
        outcome.table()
    )


def test_a_bad_challenger_is_not_promoted_and_not_retrained_again(tmp_path, monkeypatch, request):
    """A model configuration that cannot learn reaches the code location after the first
    champion: drift retrains once, the gates refuse the challenger, and the same drift against
    the same champion is not retrained again."""

    def cannot_learn(document: dict) -> None:
        document["model"]["params"] = {"max_iter": 1, "max_depth": 1, "learning_rate": 0.01}

    contracts = edited_contracts(tmp_path / "contracts", CONTRACT, cannot_learn)
    outcome = run_scenario(
        tmp_path,
        monkeypatch,
        13,
        request=request,
        daemon_contracts=contracts / f"{CONTRACT}.yaml",
        **drifting("income_drop"),
    )
    [retraining] = outcome.retrainings
    assert (retraining.trigger, retraining.promoted) == ("drift", False), outcome.table()
    assert "not promoted" in retraining.reason
    assert (outcome.rollbacks, outcome.champion) == ([], "1"), outcome.table()


def test_a_regression_after_promotion_is_rolled_back(tmp_path, monkeypatch, request):
    """An upstream bug inverts the labels of days 8-10, the first days the champion serves: the
    performance sensor retrains on them and the challenger, validated on inverted labels too, is
    promoted. From day 11 the labels are right again; the previous champion, scoring in shadow,
    does far better on the same rows, and the rollback sensor gives it the alias back."""
    outcome = run_scenario(
        tmp_path,
        monkeypatch,
        15,
        request=request,
        MLOPS_DRIFT_SCENARIO="label_error",
        MLOPS_DRIFT_START="2026-01-08",
        MLOPS_DRIFT_END="2026-01-10",
    )
    [retraining] = outcome.retrainings
    assert (retraining.trigger, retraining.promoted) == ("performance", True), outcome.table()
    [rollback] = outcome.rollbacks
    assert rollback.version == "1" and "scoring in shadow" in rollback.reason, outcome.table()
    assert outcome.champion == "1", outcome.table()
    assert outcome.days[-1].served_version == "1", outcome.table()
