"""Online serving: latency and throughput of `mlops_assets.serving serve` vs the batch scorer.

Trains a champion on a temporary home (8 synthetic days), starts the model server on it
(`model_server`: the command `make serve` runs) on 127.0.0.1, and times single-application
requests and batches, against scoring the same rows in-process with the batch scorer
(`default_probability`, what `batch_predictions` does). The baseline is the in-process scorer.

    python benchmarks/serving_latency.py [--requests 300] [--batch-rows 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import ingest_and_train, machine, table

from mlops_assets.definitions import build_definitions
from mlops_assets.io_manager import read_partition
from mlops_assets.serving.online import model_server
from mlops_assets.settings import PlatformSettings
from mlops_assets.training.model import predict

DAYS = [f"2026-01-{day:02d}" for day in range(1, 9)]


def post(url: str, frame: pd.DataFrame) -> list:
    body = json.dumps({"dataframe_split": json.loads(frame.to_json(orient="split", index=False))})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())["predictions"]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    return float(np.percentile(seconds, 50) * 1000), float(np.percentile(seconds, 95) * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--batch-rows", type=int, default=1000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder) / "home"
        settings = PlatformSettings.from_env(
            {"MLOPS_HOME": str(home), "MLOPS_SYNTHETIC_ROWS_PER_DAY": "1500"}
        )
        defs = build_definitions(settings)
        with dg.instance_for_test() as instance:
            ingest_and_train(defs, instance, DAYS)
        contract = next(c for c in settings.load_contracts() if c.name == "loan_default")
        features = read_partition(settings.storage_url, contract.key("features"), DAYS[-1])
        rows = features[contract.feature_columns]
        batch = pd.concat([rows] * (args.batch_rows // len(rows) + 1)).head(args.batch_rows)
        _, model = defs.resources["mlflow"].model(contract.model_name).load_champion()

        single_local = []
        for i in range(args.requests):
            start = time.perf_counter()
            predict(model, features.iloc[[i % len(features)]], contract)
            single_local.append(time.perf_counter() - start)
        start = time.perf_counter()
        expected = predict(model, batch, contract)
        batch_local = time.perf_counter() - start

        with model_server(settings, contract, Path(folder) / "serve.log") as base:
            url = f"{base}/invocations"
            post(url, rows.head(1))  # warm-up
            single_http = []
            for i in range(args.requests):
                start = time.perf_counter()
                post(url, rows.iloc[[i % len(rows)]])
                single_http.append(time.perf_counter() - start)
            start = time.perf_counter()
            served = np.array(post(url, batch))[:, 1]
            batch_http = time.perf_counter() - start
        assert np.allclose(served, expected), "served and batch scores differ"

    http_p50, http_p95 = percentiles(single_http)
    local_p50, local_p95 = percentiles(single_local)
    print(
        f"machine: {machine()}; {args.requests} single-row requests, one {args.batch_rows}-row batch"
    )
    print(
        table(
            ["path", "1 row p50 ms", "1 row p95 ms", f"{args.batch_rows} rows s", "rows/s"],
            [
                ["model server (HTTP)", f"{http_p50:.1f}", f"{http_p95:.1f}",
                 f"{batch_http:.3f}", f"{args.batch_rows / batch_http:,.0f}"],
                ["batch scorer in-process", f"{local_p50:.1f}", f"{local_p95:.1f}",
                 f"{batch_local:.3f}", f"{args.batch_rows / batch_local:,.0f}"],
            ],
        )
    )  # fmt: skip
    print(
        f"HTTP / in-process: {http_p50 / local_p50:.1f}x per single row (p50), "
        f"{batch_http / batch_local:.1f}x per {args.batch_rows}-row batch; scores identical"
    )


if __name__ == "__main__":
    main()
