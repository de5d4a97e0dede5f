"""The laptop's run launcher and run queue: Dagster's own, plus what they miss.

`LocalRunLauncher` adds a health check of each run's worker; `PoolQueuedRunCoordinator` creates
each run's concurrency pools when the run is queued.

Dagster's `DefaultRunLauncher` cannot tell whether a run's worker process still exists, so a run
whose worker was killed (with the daemon, by the OOM killer, by a reboot) stays STARTED forever
and blocks everything that waits for it. With `run_monitoring` on in `dagster.yaml`, the daemon
asks this launcher about every STARTED run; a worker that is gone fails the run, naming its pid.
The worker's pid is the one recorded on the run's RUN_START event; the check assumes the daemon
runs on the machine that runs the workers, which is what the default launcher does.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher, QueuedRunCoordinator
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.run_coordinator import SubmitRunContext


class PoolQueuedRunCoordinator(QueuedRunCoordinator):
    """Dagster's run queue, with each queued run's pools given the default limit on submission.

    The queue gives a new pool its default limit only while dequeuing, after it has read which
    pools have limits: the first runs of a pool queued together all start at once. Creating the
    pools when a run is queued closes that gap.
    """

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        concurrency = context.dagster_run.run_op_concurrency
        storage = self._instance.event_log_storage
        if concurrency and self._instance.global_op_concurrency_default_limit is not None:
            known = storage.get_concurrency_keys()
            for pool in concurrency.all_pools or []:
                if pool not in known:
                    storage.initialize_concurrency_limit_to_default(pool)
        return super().submit_run(context)


class LocalRunLauncher(DefaultRunLauncher):
    """Launches runs as the default launcher does; reports a run whose worker process is gone."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = self._worker_pid(run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker recorded yet")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker (pid {pid}) is gone: it was killed or its machine restarted",
            run_worker_id=str(pid),
        )

    def _worker_pid(self, run_id: str) -> int | None:
        records = self._instance.get_records_for_run(
            run_id, of_type=DagsterEventType.RUN_START, limit=1
        ).records
        event = records[0].event_log_entry.dagster_event if records else None
        return event.pid if event is not None else None


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists and is not a zombie (killed but not yet reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        state = stat.read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")
