"""The main job: the whole lifecycle on the embedded default, with the real Dagster daemon.

A week of normal loan applications arrives and a champion is trained, gated and registered. Then
incomes drop (the `income_drop` drift scenario): the daily drift reports cross the threshold, the
real `dagster-daemon` evaluates `drift_retraining_sensor`, which launches retraining; a new champion
is registered and later drift reports, compared against its training data, fall back under the
threshold. Days are fed one at a time: each waits for the sensor to look at its drift report and
for any retraining it launched to finish. Exits 0 only if that story happened.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from mlops_assets import keys
from mlops_assets.contracts import DataContract
from mlops_assets.definitions import build_definitions
from mlops_assets.keys import CONTRACT_TAG, RETRY_OF_TAG, TRIGGER_TAG
from mlops_assets.monitoring.sensors import awaits_retry
from mlops_assets.processes import stop
from mlops_assets.settings import PlatformSettings

DEMO_CONTRACT = "loan_default"  # the example whose synthetic source has drift scenarios

FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
WARM_UP_DAYS = 7  # normal days before the first champion
DRIFT_AFTER_DAYS = 10  # the scenario starts on day 11
# The story's settings; anything already set in the environment wins.
DEMO_ENVIRONMENT = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no download bars inside the story's table
    "MLFLOW_LOGGING_LEVEL": "WARNING",  # nor "Creating initial MLflow database tables..."
    "MLOPS_DRIFT_SCENARIO": "income_drop",
    "MLOPS_RETRAIN_CONSECUTIVE": "3",
    "MLOPS_SENSOR_INTERVAL_SECONDS": "1",  # a tick a second (mlops_assets.daemon)
    "MLOPS_RETRAINING_SENSOR": "running",
}


@dataclass
class Day:
    day: str
    success: bool
    row_counts: dict[str, int] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)
    drift_share: float | None = None
    reference_version: str | None = None
    served_version: str | None = None
    served_metric: float | None = None  # the task's gate metric on the day's labelled rows
    oracle_roc_auc: float | None = None  # a binary synthetic source's best reachable ROC AUC
    retraining: list[Retraining] = field(default_factory=list)


@dataclass
class Retraining:
    run_id: str
    trigger: str
    status: str
    since: str
    version: str | None
    promoted: bool
    reason: str


def run_job(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    job: str,
    day: str,
    log_level: str,
    ops: dict[str, Any] | None = None,
):
    return defs.resolve_job_def(job).execute_in_process(
        partition_key=day,
        instance=instance,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}, "ops": ops or {}},
    )


def materialized_metadata(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, object]]:
    metadata: dict[str, dict[str, object]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        metadata[materialization.asset_key.to_user_string()] = {
            key: value.value for key, value in materialization.metadata.items()
        }
    return metadata


def day_outcome(
    day: str,
    result: dg.ExecuteInProcessResult,
    defs: dg.Definitions,
    contract: DataContract,
) -> Day:
    metadata = {
        key.removeprefix(f"{contract.name}/"): value
        for key, value in materialized_metadata(result).items()
    }
    outcome = Day(
        day,
        result.success,
        row_counts={
            asset: int(meta["dagster/row_count"])
            for asset, meta in metadata.items()
            if "dagster/row_count" in meta
        },
        failed_checks=[e.check_name for e in result.get_asset_check_evaluations() if not e.passed],
    )
    if "drift_report" in metadata:
        outcome.drift_share = float(metadata["drift_report"]["drift_share"])
        outcome.reference_version = str(metadata["drift_report"]["reference_version"])
    if "model_performance" in metadata:
        performance = metadata["model_performance"]
        outcome.served_version = str(performance["model_version"])
        if contract.task.metric.name in performance:  # absent while no row is labelled
            outcome.served_metric = float(performance[contract.task.metric.name])
        if "roc_auc" in performance:  # a binary model's
            outcome.oracle_roc_auc = oracle_roc_auc(defs, contract, day)
    return outcome


def oracle_roc_auc(defs: dg.Definitions, contract: DataContract, day: str) -> float | None:
    """The best ROC AUC any model could reach on the day's rows (sources that know the truth)."""
    from sklearn.metrics import roc_auc_score

    from mlops_assets.ingestion.assets import source_key

    generator = getattr(defs.resources[source_key(contract)], "generator", None)
    if generator is None:
        return None
    features = day_features(defs, contract, day)
    labelled = features[features[contract.label_column].notna()]
    return float(
        roc_auc_score(
            labelled[contract.label_column].astype(int),
            generator.true_default_probability(labelled),
        )
    )


def day_features(defs: dg.Definitions, contract: DataContract, day: str) -> Any:
    """A day's stored feature table, read directly (no Dagster context: no step logging)."""
    from mlops_assets.io_manager import read_partition

    storage = defs.resources["io_manager"].base_path
    return read_partition(storage, contract.key(keys.FEATURES), day)


def start_daemon(log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`dagster-daemon run` on the code location, logging to `log` (environment: `env` or ours),
    its sensor loop as frequent as the sensor interval (`mlops_assets.daemon`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        return subprocess.Popen(
            [sys.executable, "-m", "mlops_assets.daemon", "run", "-m", "mlops_assets"],
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )


def story_daemon_environment(
    contract: DataContract, contracts: Path | None = None
) -> dict[str, str]:
    """This process's environment with MLOPS_CONTRACTS set to `contracts`, by default the story's
    contract file alone: at a tick a second, an idle daemon with every shipped contract's sensors
    takes 1.3 of 2 cores, with one contract's 0.4 (`benchmarks/idle_daemon.py`)."""
    if contracts is None and contract.path is None:
        raise ValueError(f"{contract.name}: the story's daemon needs the contract's file")
    return {**os.environ, "MLOPS_CONTRACTS": str(contracts or contract.path)}


def wait_for_sensor_tick(
    instance: dg.DagsterInstance,
    sensor: str,
    after: float,
    daemon: subprocess.Popen,
    log: Path,
    timeout: float = 180,
) -> None:
    """Block until the daemon has finished a tick of `sensor` that started after `after`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited ({daemon.returncode}); see {log}")
        for state in instance.all_instigator_state():
            if state.instigator_name != sensor or state.instigator_type.value != "SENSOR":
                continue
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
            if ticks and ticks[0].timestamp > after and ticks[0].status.value != "STARTED":
                if ticks[0].status.value == "FAILURE":
                    raise RuntimeError(f"{sensor} failed: {ticks[0].error}")
                return
        time.sleep(0.2)
    raise TimeoutError(f"{sensor} did not tick within {timeout:.0f}s; see {log}")


def automation_sensors(defs: dg.Definitions, contract: DataContract) -> list[str]:
    """The contract's sensors that launch runs by themselves and are on by default."""
    names = {
        name(contract.name)
        for name in (keys.retraining_sensor, keys.performance_sensor, keys.rollback_sensor)
    }
    return [
        sensor.name
        for sensor in defs.sensors
        if sensor.name in names and sensor.default_status == dg.DefaultSensorStatus.RUNNING
    ]


def wait_for_automation(
    instance: dg.DagsterInstance, contract: str, seen: set[str], timeout: float = 900
) -> list[Retraining]:
    """The runs the contract's sensors launched (retraining, rollback) that are not in `seen`,
    once every such run has finished and each that failed on infrastructure has been requested
    again (`awaits_retry`); their ids are added to `seen`."""
    deadline = time.monotonic() + timeout

    def launched() -> list[dg.DagsterRun]:
        runs = instance.get_runs(dg.RunsFilter(tags={CONTRACT_TAG: contract}))
        return [run for run in reversed(runs) if TRIGGER_TAG in run.tags]

    def settled(runs: list[dg.DagsterRun]) -> bool:
        retried = {run.tags.get(RETRY_OF_TAG) for run in runs}
        return all(run.status in FINISHED for run in runs) and all(
            run.run_id in retried or not awaits_retry(instance, run)
            for run in runs
            if run.run_id not in seen
        )

    runs = launched()
    while not settled(runs):
        if time.monotonic() > deadline:
            raise TimeoutError(f"runs of {contract} did not finish within {timeout:.0f}s")
        time.sleep(0.25)
        runs = launched()
    new = [run for run in runs if run.run_id not in seen]
    seen.update(run.run_id for run in new)
    return [retraining_outcome(instance, run) for run in new]


def retraining_outcome(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Retraining:
    """What a training run did, read from its own events: the registry version, or the failed
    gates; for a rollback run, the version the alias moved to."""
    version, promoted, reason = None, False, "registry step did not run"
    if run.tags.get(TRIGGER_TAG) == "rollback":
        reason = "not moved: the champion had changed"
    failed_gates, failed_steps = [], []
    for entry in instance.all_logs(run.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.ASSET_OBSERVATION:
            meta = event.event_specific_data.asset_observation.metadata
            if "event" in meta and meta["event"].value == "rollback":
                version, promoted = str(meta["champion"].value), bool(meta["moved"].value)
                reason = str(meta["reason"].value)
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            error = event.event_specific_data.error
            message = error.message.strip().splitlines()[0] if error else "no error recorded"
            failed_steps.append(f"{event.step_key} failed: {message}")
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            if not evaluation.passed:
                failed_gates.append(evaluation.check_name)
        elif event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            if materialization.asset_key.path[-1] == keys.REGISTERED_MODEL_VERSION:
                meta = materialization.metadata
                version, promoted = str(meta["version"].value), bool(meta["champion"].value)
                reason = str(meta["reason"].value)
    if version is None and failed_gates:
        reason = f"not promoted, gate(s) failed: {', '.join(failed_gates)}"
    elif version is None and failed_steps:
        reason = "; ".join(failed_steps)
    return Retraining(
        run.run_id,
        run.tags.get(TRIGGER_TAG, "manual"),
        run.status.value,
        run.tags.get("mlops/training_since", ""),
        version,
        promoted,
        reason,
    )


def story_problems(
    days: list[Day], first_champion: Retraining | None, threshold: float, drift_start: str
) -> list[str]:
    """What, if anything, kept the story from happening."""
    problems = []
    if first_champion is None or not first_champion.promoted:
        problems.append("no first champion was promoted")
    monitored = [d for d in days if d.drift_share is not None]
    before = [d for d in monitored if d.day < drift_start]
    after = [d for d in monitored if d.day >= drift_start]
    if any(d.drift_share > threshold for d in before):
        problems.append("drift was reported before the scenario started")
    crossed = next((d for d in after if d.drift_share > threshold), None)
    if crossed is None:
        problems.append(f"no drift report crossed {threshold} after {drift_start}")
    promoted = next(
        (r for d in days for r in d.retraining if r.trigger == "drift" and r.promoted), None
    )
    if promoted is None:
        problems.append("the sensor did not launch a retraining that promoted a new champion")
    else:
        recovered = [d for d in monitored if d.reference_version == promoted.version]
        if not recovered:
            problems.append("no drift report compared against the new champion")
        elif any(d.drift_share > threshold for d in recovered):
            problems.append("drift against the new champion stayed above the threshold")
    if not all(d.success for d in days):
        problems.append("a daily run failed")
    return problems


@dataclass
class Online:
    """The champion answering over HTTP, compared with the batch scorer on the same rows."""

    version: str
    day: str
    rows: int
    latency_ms: float
    max_difference: float


def online_prediction(
    defs: dg.Definitions,
    settings: PlatformSettings,
    contract: DataContract,
    day: str,
    rows: int = 5,
) -> Online:
    """Serve the champion (as `make serve` does) and score `day` over HTTP."""
    import numpy as np

    from mlops_assets.serving.online import model_server, predict_online
    from mlops_assets.training.model import predict

    features = day_features(defs, contract, day).head(rows)
    champion, model = defs.resources["mlflow"].model_of(contract).load_champion()
    expected = predict(model, features, contract)
    log = settings.home / "logs" / "serve.log"
    with model_server(settings, contract, log) as url:
        started = time.perf_counter()
        served = predict_online(url, features[contract.feature_columns], contract.task)
        latency_ms = (time.perf_counter() - started) * 1000
    difference = float(np.max(np.abs(np.asarray(served) - expected)))
    return Online(str(champion.version), day, len(served), latency_ms, difference)


def print_story(
    days: list[Day],
    first: Retraining | None,
    settings: PlatformSettings,
    contract: DataContract,
    problems: list[str],
    online: Online | None = None,
) -> None:
    threshold = contract.spec.drift.threshold
    metric = f"served {contract.task.metric.title}"
    print(f"\nday         raw   rejected  drift share  reference  served  {metric}  oracle AUC")
    for d in days:
        share = (
            "-"
            if d.drift_share is None
            else f"{d.drift_share:.3f}{' !' if d.drift_share > threshold else '  '}"
        )
        served = "-" if d.served_metric is None else f"{d.served_metric:.4f}"
        oracle = "-" if d.oracle_roc_auc is None else f"{d.oracle_roc_auc:.4f}"
        print(
            f"{d.day}  {d.row_counts.get(keys.RAW, 0):>5} {d.row_counts.get(keys.REJECTED, 0):>8}"
            f"  {share:>11}  {d.reference_version or '-':>9}  {d.served_version or '-':>6}  {served:>{len(metric)}}  {oracle:>10}"
            + ("" if d.success else "  RUN FAILED")
        )
        if d.day == days[min(WARM_UP_DAYS, len(days)) - 1].day and first is not None:
            print(
                f"            -> champion trained as of {d.day}: v{first.version} ({first.reason})"
            )
        for r in d.retraining:
            if r.trigger == "rollback":
                print(f"            -> rollback sensor: v{r.version}: {r.reason}")
                continue
            outcome = (
                f"v{r.version} champion"
                if r.promoted
                else (f"v{r.version} registered, not champion" if r.version else "no version")
            )
            print(
                f"            -> {r.trigger} sensor launched retraining on data since {r.since}: {r.status}, {outcome}: {r.reason}"
            )
    if online is not None:
        print(
            f"\nOnline serving:  champion v{online.version} over HTTP (make serve) scored "
            f"{online.rows} rows ({contract.spec.entity}s) of {online.day} in "
            f"{online.latency_ms:.0f} ms, equal to "
            f"the batch scorer (largest difference {online.max_difference:.1e})"
        )
    scenario = (
        f"{settings.source_overrides.get('scenario')} from "
        f"{settings.source_overrides.get('scenario_start')}"
        if contract.spec.source.kind == "python"
        else f"delivered by {contract.spec.source.url}"
    )
    print(f"\nDrift scenario:  {scenario} (threshold {threshold})")
    print(f"Drift reports:   {settings.reports_url}/{contract.name}/drift_report/<day>.html")
    print(f"Asset files:     {settings.storage_url}/{contract.name}/")
    print(
        "Metrics:         "
        + (settings.pushgateway_url or f"{settings.metrics_dir}/*.prom (Prometheus text format)")
    )
    print(f"MLflow store:    {settings.mlflow_tracking_uri}")
    print(f"Dagster home:    {os.environ.get('DAGSTER_HOME')}")
    print("Look around:     make dev         Dagster UI on http://127.0.0.1:3000")
    print(f"                 make mlflow-ui   MLflow UI on {settings.mlflow_ui_url}")
    print(
        "                 make serve       the champion over HTTP on http://127.0.0.1:5001"
        f" (CONTRACT={contract.name})"
    )
    print("\nStory complete." if not problems else "\nSTORY INCOMPLETE: " + "; ".join(problems))


def warm_up(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    contract: DataContract,
    days: list[str],
    log_level: str = "ERROR",
) -> tuple[list[Day], Retraining]:
    """The story's first WARM_UP_DAYS of `days` ingested, then the first champion trained on them."""
    outcomes = []
    for day in days[:WARM_UP_DAYS]:
        print(f"{day}: ingesting", flush=True)
        result = run_job(defs, instance, keys.ingestion_job(contract.name), day, log_level)
        outcomes.append(day_outcome(day, result, defs, contract))
    print(f"{days[WARM_UP_DAYS - 1]}: training the first champion", flush=True)
    training = run_job(
        defs, instance, keys.training_job(contract.name), days[WARM_UP_DAYS - 1], log_level
    )
    return outcomes, retraining_outcome(instance, instance.get_run_by_id(training.run_id))


def run_story(
    settings: PlatformSettings,
    contract: DataContract,
    days: list[str],
    log_level: str = "ERROR",
    defs: dg.Definitions | None = None,
    html_reports: bool = True,
    warm: tuple[list[Day], Retraining | None] | None = None,
    daemon_contracts: Path | None = None,
) -> tuple[list[Day], Retraining | None]:
    """Feed `days` one at a time with the real daemon running: warm-up, first champion, then daily.

    After each daily run it waits for the daemon's tick of each of the contract's running
    sensors (drift, performance, rollback) and for any run they launched, so each day's row says
    what automation did. `html_reports=False` skips the Evidently HTML reports (faster). `warm`
    is a warm-up already done in this instance (`warm_up`'s result, in a copy of a warmed-up
    home): the story goes on from the day after it. The daemon's code location (so every run its
    sensors launch) loads `daemon_contracts` (a contract file or folder, as MLOPS_CONTRACTS),
    by default the story's contract file only (`story_daemon_environment`).
    """
    defs = defs or build_definitions(settings)
    sensors = automation_sensors(defs, contract)
    daily_ops = (
        {}
        if html_reports
        else {keys.op_name(contract.key(keys.DRIFT_REPORT)): {"config": {"html_report": False}}}
    )
    daemon_log = settings.home / "logs" / "daemon.log"
    seen: set[str] = set()  # automation runs already reported on a day
    with dg.DagsterInstance.get() as instance:
        daemon = start_daemon(daemon_log, story_daemon_environment(contract, daemon_contracts))
        try:
            outcomes, first = (
                warm_up(defs, instance, contract, days, log_level)
                if warm is None
                else (list(warm[0]), warm[1])
            )
            for day in days[len(outcomes) :]:
                print(f"{day}: ingesting, checking drift, scoring", flush=True)
                result = run_job(
                    defs, instance, keys.daily_job(contract.name), day, log_level, daily_ops
                )
                reported_at = time.time()
                outcome = day_outcome(day, result, defs, contract)
                outcomes.append(outcome)
                for sensor in sensors:
                    wait_for_sensor_tick(instance, sensor, reported_at, daemon, daemon_log)
                outcome.retraining = wait_for_automation(instance, contract.name, seen)
        finally:
            stop(daemon)
    return outcomes, first


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--days", type=int, default=16, help="days to simulate (at least 11 for the story)"
    )
    parser.add_argument("--start", help="first day (default: MLOPS_PARTITIONS_START)")
    parser.add_argument(
        "--contract",
        default=DEMO_CONTRACT,
        help="whose story: the loan example drifts by itself; another contract's source must "
        f"deliver its drift from day {DRIFT_AFTER_DAYS + 1}",
    )
    parser.add_argument(
        "--ui", action="store_true", help="afterwards, keep `dagster dev` running to look around"
    )
    parser.add_argument(
        "--ui-only", action="store_true", help="only run `dagster dev` with the story's settings"
    )
    parser.add_argument("--verbose", action="store_true", help="show every Dagster event")
    args = parser.parse_args(argv)
    if not os.environ.get("DAGSTER_HOME"):
        parser.error(
            "DAGSTER_HOME is not set: run through `make demo`, or export it to a folder with dagster.yaml"
        )
    if args.days < WARM_UP_DAYS + 4:
        parser.error(f"--days must be at least {WARM_UP_DAYS + 4}")
    start = date.fromisoformat(args.start or PlatformSettings.from_env().partitions_start)
    drift_start = (start + timedelta(days=DRIFT_AFTER_DAYS)).isoformat()
    for name, value in {**DEMO_ENVIRONMENT, "MLOPS_DRIFT_START": drift_start}.items():
        os.environ.setdefault(name, value)
    if args.ui_only:
        return run_ui()
    settings = PlatformSettings.from_env()
    contract = next((c for c in settings.load_contracts() if c.name == args.contract), None)
    if contract is None:
        parser.error(
            f"no contract {args.contract!r} in MLOPS_CONTRACTS ({settings.contracts_path})"
        )
    days = [(start + timedelta(days=offset)).isoformat() for offset in range(args.days)]
    defs = build_definitions(settings)
    log_level = "DEBUG" if args.verbose else "ERROR"
    outcomes, first = run_story(settings, contract, days, log_level, defs)
    problems = story_problems(
        outcomes,
        first,
        contract.spec.drift.threshold,
        settings.source_overrides.get("scenario_start") or drift_start,
    )
    online = None
    try:
        online = online_prediction(defs, settings, contract, days[-1])
    except (OSError, RuntimeError, TimeoutError) as error:
        problems.append(f"online serving of the champion failed: {error}")
    if online is not None and online.max_difference > 1e-9:
        problems.append("online predictions differ from the batch scorer's")
    print_story(outcomes, first, settings, contract, problems, online)
    if args.ui:
        run_ui()
    return 0 if not problems else 1


def run_ui() -> int:
    """`dagster dev` (webserver and daemon) on http://127.0.0.1:3000 until interrupted."""
    dagster = Path(sys.executable).parent / "dagster"
    command = [str(dagster), "dev", "-m", "mlops_assets", "-h", "127.0.0.1", "-p", "3000"]
    return subprocess.run(command).returncode


if __name__ == "__main__":
    sys.exit(main())
