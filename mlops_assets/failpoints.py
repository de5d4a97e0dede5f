"""Named crash points, so that crash tests kill a real process exactly where a crash hurts most.

`MLOPS_FAILPOINTS=promotion.after_alias,training_set=hang` makes the process that reaches
`failpoint("promotion.after_alias")` kill itself with SIGKILL (no cleanup, no `finally`, as the
OOM killer or a node loss would), and the one that reaches `failpoint("training_set")` wait
forever. Unset (always, outside tests) a failpoint costs one environment lookup.
"""

from __future__ import annotations

import os
import signal
import time

VARIABLE = "MLOPS_FAILPOINTS"


def failpoint(name: str) -> None:
    """Crash (or hang) here if `MLOPS_FAILPOINTS` names this point."""
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    for item in spec.split(","):
        point, _, action = item.strip().partition("=")
        if point != name:
            continue
        if action == "hang":
            while True:
                time.sleep(60)
        os.kill(os.getpid(), signal.SIGKILL)
