"""Prometheus metrics exported by the lifecycle: text files by default, a real Pushgateway when set."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops_assets.definitions import build_definitions
from mlops_assets.monitoring import metrics as m
from mlops_assets_tests.conftest import HISTORY_DAYS, HISTORY_ROWS_PER_DAY, Platform, make_settings
from mlops_assets_tests.servers import free_port, require_tool, running

TRAIN_DAY = HISTORY_DAYS[-1]
NEXT_DAY = "2026-01-09"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample as {(name, labels): value}, parsed by prometheus_client's own parser."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(parsed: dict, name: str, **labels: str) -> float:
    matches = [v for (n, ls), v in parsed.items() if n == name and set(labels.items()) <= ls]
    assert len(matches) == 1, (name, labels, [sorted(ls) for (n, ls) in parsed if n == name])
    return matches[0]


def metadata(platform: Platform, stage: str) -> dict:
    event = platform.instance.get_latest_materialization_event(platform.key(stage))
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def files(folder: Path, model: str) -> dict:
    """`<model>.<group>.prom` files of one model, by group."""
    return {
        p.name.removeprefix(f"{model}.").removesuffix(".prom"): samples(p.read_text())
        for p in sorted(folder.glob(f"{model}.*.prom"))
    }


@pytest.mark.slow
def test_lifecycle_exports_metrics_to_files_and_to_a_real_pushgateway(
    platform: Platform, tmp_path: Path
):
    model = platform.contract.model_name
    assert platform.run("train_and_register", TRAIN_DAY).success
    assert platform.run("daily_lifecycle", NEXT_DAY).success
    exported = files(Path(platform.settings.metrics_dir), model)
    assert set(exported) == {
        "model_registration", "champion", "drift_report", "batch_predictions", "model_performance"
    }  # fmt: skip

    drift = metadata(platform, "drift_report")
    assert value(exported["drift_report"], m.DRIFT_SHARE, model=model) == drift["drift_share"]
    assert value(exported["drift_report"], m.DRIFT_THRESHOLD) == 0.2
    report = platform.load("drift_report", NEXT_DAY)
    for row in report.itertuples():
        labels = {"column": row.column, "test": row.test}
        assert value(exported["drift_report"], m.DRIFT_COLUMN_SCORE, **labels) == row.score
    assert value(exported["champion"], m.CHAMPION_VERSION, model=model) == 1
    assert value(exported["model_registration"], m.REGISTERED_PROMOTED) == 1
    predictions = metadata(platform, "batch_predictions")
    batch = exported["batch_predictions"]
    assert value(batch, m.PREDICTIONS, model_version="1") == predictions["dagster/row_count"]
    assert value(batch, m.PREDICTION_MEAN) == pytest.approx(predictions["mean_score"])
    assert value(batch, m.PREDICTION_PARTITION) == pd.Timestamp(NEXT_DAY, tz="UTC").timestamp()
    performance = metadata(platform, "model_performance")
    assert (
        value(exported["model_performance"], m.served_metric(platform.contract.task.metric))
        == (performance[platform.contract.task.metric.name])
    )
    metric = platform.contract.task.metric
    served_validation = value(
        exported["model_performance"], m.served_validation_metric(metric), model_version="1"
    )  # the champion's own validation value, beside its served one, for the alert rules
    assert served_validation == pytest.approx(performance[f"champion_validation_{metric.name}"])
    assert drift["prometheus_metrics"] == str(
        Path(platform.settings.metrics_dir) / f"{model}.drift_report.prom"
    )

    # the same code location with PROMETHEUS_PUSHGATEWAY_URL set pushes instead
    port = free_port()
    gateway = f"http://127.0.0.1:{port}"
    command = [
        require_tool("prometheus-pushgateway"),
        f"--web.listen-address=127.0.0.1:{port}",
        # Debian's build persists to a shared default file: give this one its own, fresh
        f"--persistence.file={tmp_path / 'pushgateway.data'}",
    ]
    with running(command, f"{gateway}/-/healthy", tmp_path / "pushgateway.log"):
        pushing = Platform(
            platform.settings.home,
            platform.instance,
            platform.name,
            PROMETHEUS_PUSHGATEWAY_URL=gateway,
        )
        assert pushing.run("daily_lifecycle", "2026-01-10").success
        assert pushing.run("rollback_champion", run_config=rollback_to(platform, "1")).success
        with urllib.request.urlopen(f"{gateway}/metrics", timeout=10) as response:
            pushed = samples(response.read().decode())
    drift = metadata(platform, "drift_report")
    assert drift["prometheus_metrics"].startswith(f"pushed to {gateway}")
    assert (
        value(pushed, m.DRIFT_SHARE, job="mlops_assets", group="drift_report")
        == drift["drift_share"]
    )
    assert value(pushed, m.CHAMPION_VERSION, group="champion", model=model) == 1
    assert (
        value(pushed, m.PREDICTIONS, group="batch_predictions")
        == metadata(platform, "batch_predictions")["dagster/row_count"]
    )
    assert value(pushed, m.DRIFT_PARTITION) == pd.Timestamp("2026-01-10", tz="UTC").timestamp()


def rollback_to(platform: Platform, version: str) -> dict:
    op = f"{platform.name}__move_champion_back"
    return {"ops": {op: {"config": {"to_version": version, "reason": "test"}}}}


def test_an_unreachable_pushgateway_is_logged_and_does_not_fail_the_lifecycle(tmp_path, instance):
    settings = make_settings(
        tmp_path / "home",
        MLOPS_SYNTHETIC_ROWS_PER_DAY=HISTORY_ROWS_PER_DAY,
        PROMETHEUS_PUSHGATEWAY_URL=f"http://127.0.0.1:{free_port()}",
    )
    resource = build_definitions(settings).resources["metrics"]
    log = dg.build_op_context().log
    where = resource.export("some-model", "champion", m.champion_metrics("3"), log)
    assert where.startswith(f"push to {settings.pushgateway_url} failed")
    assert not Path(settings.metrics_dir).exists()  # nothing half-written elsewhere
