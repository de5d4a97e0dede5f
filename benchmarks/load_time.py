"""Code-location load time: every run worker, step process and sensor tick pays it.

    python benchmarks/load_time.py [--repeats 5]

Times, in fresh interpreters and interleaved so machine noise hits all alike:
`python -c "import dagster"` (the baseline), and importing `mlops_assets.definitions` and building
the Definitions with the two shipped contracts and with ten contracts (copies of the shipped ones
under other names, in a temporary MLOPS_CONTRACTS folder). Prints medians, the ratios against the
baseline (targets: 1.5x for two contracts, 2x for ten), and the heaviest imports.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, median, table

BASELINE = "import dagster"
CODE_LOCATION = "import mlops_assets.definitions as d; d.build_definitions()"
SPLIT = (
    "import time; t = time.perf_counter(); import mlops_assets.definitions as d; "
    "i = time.perf_counter(); d.build_definitions(); print(i - t, time.perf_counter() - i)"
)


def timed(code: str, env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, env=env)
    return time.perf_counter() - started


def ten_contracts(folder: Path) -> Path:
    """Ten contract files: the shipped ones, then copies of them under new names and models."""
    from mlops_assets.examples import EXAMPLES_DIR

    shipped = sorted(EXAMPLES_DIR.glob("*.yaml"))
    for index in range(10):
        source = shipped[index % len(shipped)]
        document = yaml.safe_load(source.read_text())
        if index >= len(shipped):
            document["name"] = f"{source.stem}_{index}"
            document["model"]["name"] = f"{document['model']['name']}-{index}"
        (folder / f"{document['name']}.yaml").write_text(yaml.safe_dump(document))
    return folder


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
    with tempfile.TemporaryDirectory() as folder:
        home = {**os.environ, "MLOPS_HOME": str(Path(folder) / "home")}
        ten = {**home, "MLOPS_CONTRACTS": str(ten_contracts(Path(folder)))}
        cases = [
            ("python -c 'import dagster'", BASELINE, home, None),
            ("two shipped contracts", CODE_LOCATION, home, 1.5),
            ("ten contracts", CODE_LOCATION, ten, 2.0),
        ]
        timed(CODE_LOCATION, ten)  # warm the file cache
        times: dict[str, list[float]] = {name: [] for name, *_ in cases}
        for _ in range(args.repeats):
            for name, code, env, _target in cases:
                times[name].append(timed(code, env))
        split = subprocess.run(
            [sys.executable, "-c", SPLIT], capture_output=True, text=True, check=True, env=ten
        ).stdout.split()
    baseline = median(times[cases[0][0]])
    print(f"Code-location load time, {machine()}, median of {args.repeats}")
    rows = []
    for name, _code, _env, target in cases:
        values = times[name]
        ratio = median(values) / baseline
        rows.append(
            [
                name,
                f"{median(values):.2f}",
                f"{min(values):.2f}",
                f"{max(values):.2f}",
                f"{ratio:.2f}x",
                f"<= {target}x" if target else "baseline",
            ]
        )
    print(table(["what", "median s", "min s", "max s", "ratio", "target"], rows))
    imports, build = (float(value) for value in split)
    print(f"ten contracts in one process: imports {imports:.2f} s, building {build:.2f} s")
    print(
        "heaviest imports (cumulative s):",
        ", ".join(f"{name} {seconds:.2f}" for name, seconds in heaviest_imports(CODE_LOCATION)),
    )


if __name__ == "__main__":
    main()
