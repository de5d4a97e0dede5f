"""What an idle daemon costs with every shipped contract's sensors running, and with one contract's.

    python benchmarks/idle_daemon.py [--interval 1] [--seconds 30] [--warm-up 40]

Why a story's daemon loads the story's contract file only (`mlops_assets.demo.run_story`): at the
stories' tick a second, Dagster builds an instance and opens SQLite for every sensor evaluation, so
sensors with nothing to do still cost CPU. Starts `python -m mlops_assets.daemon` on an empty home
with every sensor running, waits `--warm-up` seconds (code server up, first ticks done), then
prints the CPU the daemon and its code servers used over `--seconds`, in cores (1.0 = one core
busy), for every shipped contract (MLOPS_CONTRACTS unset), for the loan contract's file alone,
and with every sensor stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table

from mlops_assets.demo import start_daemon
from mlops_assets.processes import stop

REPO = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def session_cpu_seconds(session: int) -> float:
    """User and system CPU of every live process of `session`, with their reaped children."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[3]) == session:  # field 6 of stat, the session id
            total += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return total / TICKS


def idle_cores(contracts: str | None, running: bool, args: argparse.Namespace) -> float:
    """Cores an idle daemon used over `args.seconds`, after `args.warm_up`."""
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        (home / "dagster").mkdir()
        (home / "dagster" / "dagster.yaml").write_text((REPO / "dagster.yaml").read_text())
        status = "running" if running else "stopped"
        env = {
            **os.environ,
            "MLOPS_HOME": str(home),
            "DAGSTER_HOME": str(home / "dagster"),
            "MLOPS_RETRAINING_SENSOR": status,
            "MLOPS_PERFORMANCE_SENSOR": status,
            "MLOPS_SENSOR_INTERVAL_SECONDS": str(args.interval),
        }
        env.pop("MLOPS_CONTRACTS", None)
        if contracts is not None:
            env["MLOPS_CONTRACTS"] = contracts
        daemon = start_daemon(home / "daemon.log", env)  # in its own session, as in a story
        try:
            time.sleep(args.warm_up)  # the measured state is idleness itself, not a wait
            before = session_cpu_seconds(daemon.pid)
            time.sleep(args.seconds)
            used = session_cpu_seconds(daemon.pid) - before
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited ({daemon.returncode}); see its log")
        finally:
            stop(daemon)
            with contextlib.suppress(ProcessLookupError):  # a code server it left behind
                os.killpg(daemon.pid, signal.SIGKILL)
    return used / args.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interval", type=int, default=1, help="MLOPS_SENSOR_INTERVAL_SECONDS")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--warm-up", type=float, default=40)
    args = parser.parse_args()
    loan = str(REPO / "mlops_assets" / "examples" / "loan_default.yaml")
    cases = [
        ("every shipped contract, sensors running", None, True),
        ("the loan contract's file, sensors running", loan, True),
        ("every shipped contract, sensors stopped", None, False),
    ]
    rows = [[name, f"{idle_cores(path, running, args):.2f}"] for name, path, running in cases]
    print(f"{machine()}; a tick every {args.interval} s, CPU over {args.seconds:.0f} s")
    print(table(["idle daemon", "cores"], rows))


if __name__ == "__main__":
    main()
