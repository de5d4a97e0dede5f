"""Code-location load time: every run worker, step process and sensor tick pays it.

    python benchmarks/load_time.py [--repeats 5]

Times, in fresh interpreters and interleaved so machine noise hits both alike:
`python -c "import dagster"` (the baseline) and importing `mlops_assets.definitions` and building
the Definitions. Prints medians, the ratio, and the heaviest imports of the code location.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, table

BASELINE = "import dagster"
CODE_LOCATION = "import mlops_assets.definitions as d; d.build_definitions()"
SPLIT = (
    "import time; t = time.perf_counter(); import mlops_assets.definitions as d; "
    "i = time.perf_counter(); d.build_definitions(); print(i - t, time.perf_counter() - i)"
)


def timed(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - started


def heaviest_imports(code: str, top: int = 6) -> list[tuple[str, float]]:
    """Packages by cumulative import time (python -X importtime), our own package excluded."""
    stderr = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True
    ).stderr
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if match:  # a package's first import includes its sub-imports: keep its largest total
            package = match.group(2).split(".")[0]
            if package != "mlops_assets":
                totals[package] = max(totals.get(package, 0.0), int(match.group(1)) / 1e6)
    return sorted(totals.items(), key=lambda item: -item[1])[:top]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    timed(CODE_LOCATION)  # warm the file cache
    baseline, ours = [], []
    for _ in range(args.repeats):
        baseline.append(timed(BASELINE))
        ours.append(timed(CODE_LOCATION))
    print(f"Code-location load time, {machine()}, median of {args.repeats}")
    print(
        table(
            ["what", "median s", "min s", "max s"],
            [
                [
                    "python -c 'import dagster'",
                    f"{median(baseline):.2f}",
                    f"{min(baseline):.2f}",
                    f"{max(baseline):.2f}",
                ],
                [
                    "import + build Definitions",
                    f"{median(ours):.2f}",
                    f"{min(ours):.2f}",
                    f"{max(ours):.2f}",
                ],
            ],
        )
    )
    print(f"ratio: {median(ours) / median(baseline):.2f}x (target <= 1.5x)")
    imports, build = (
        float(value)
        for value in subprocess.run(
            [sys.executable, "-c", SPLIT], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    print(f"in one process: imports {imports:.2f} s, building the Definitions {build:.2f} s")
    print(
        "heaviest imports (cumulative s):",
        ", ".join(f"{name} {seconds:.2f}" for name, seconds in heaviest_imports(CODE_LOCATION)),
    )


if __name__ == "__main__":
    main()
