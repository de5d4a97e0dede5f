"""The Dagster UI shows the platform: a real webserver and daemon, driven by headless Chromium.

Debian's `chromium` through the `playwright` package (executable_path: never a browser download).
Screenshots go to $MLOPS_TEST_ARTIFACTS (default `test-artifacts/`)/ui/.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest

from mlops_assets import keys
from mlops_assets.demo import start_daemon
from mlops_assets.processes import stop
from mlops_assets_tests.conftest import HISTORY_DAYS, HISTORY_ROWS_PER_DAY, Platform
from mlops_assets_tests.servers import BIN, free_port, require_tool, running
from mlops_assets_tests.test_definitions import EXPECTED_ASSETS

pytestmark = [pytest.mark.ui, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
LOCATION = "mlops_assets"
GROUPS: dict[str, list[str]] = {}  # one lineage per model: its group, its stages
for _asset, _group in EXPECTED_ASSETS.items():  # the snapshot the definitions test guards
    GROUPS.setdefault(_group, []).append(_asset.split("/")[-1])
CONTRACT = "loan_default"
RETRAINING_SENSOR = keys.retraining_sensor(CONTRACT)
DRIFT_DAY = "2026-01-09"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


def artifacts() -> Path:
    folder = Path(os.environ.get("MLOPS_TEST_ARTIFACTS", REPO / "test-artifacts")) / "ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class GraphQL:
    def __init__(self, base_url: str) -> None:
        self.url = f"{base_url}/graphql"

    def __call__(self, query: str, **variables: object) -> dict:
        request = urllib.request.Request(
            self.url,
            data=json.dumps({"query": query, "variables": variables}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        assert "errors" not in body, body["errors"]
        return body["data"]

    def sensor(self) -> dict:
        return self(
            """query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) {
                 ... on Sensor { name sensorState { status ticks(limit: 1) { status runIds skipReason } } } } }""",
            s={
                "repositoryLocationName": LOCATION,
                "repositoryName": "__repository__",
                "sensorName": RETRAINING_SENSOR,
            },
        )["sensorOrError"]


@pytest.fixture
def history(tmp_path: Path, feature_history: Path, monkeypatch) -> dict[str, str]:
    """A champion, then a day of drift, on an instance a webserver can read; its environment."""
    env = {
        "MLOPS_HOME": str(tmp_path / "home"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
        "MLOPS_SYNTHETIC_ROWS_PER_DAY": HISTORY_ROWS_PER_DAY,
        "MLOPS_DRIFT_SCENARIO": "income_drop",
        "MLOPS_DRIFT_START": DRIFT_DAY,
        "MLOPS_SENSOR_INTERVAL_SECONDS": "5",
        "MLOPS_RETRAIN_MIN_ROWS": "1000",  # one drifted day (less its rejected rows) is enough
    }
    Path(env["DAGSTER_HOME"]).mkdir()
    monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])  # dagster.yaml reads it
    shutil.copy(REPO / "dagster.yaml", env["DAGSTER_HOME"])
    shutil.copytree(feature_history / "assets", tmp_path / "home" / "assets")
    shutil.copytree(feature_history / "sources", tmp_path / "home" / "sources")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        platform = Platform(
            tmp_path / "home",
            instance,
            CONTRACT,
            **{
                k: v
                for k, v in env.items()
                if k.startswith("MLOPS_")
                and k not in ("MLOPS_HOME", "MLOPS_SYNTHETIC_ROWS_PER_DAY")
            },
        )
        assert platform.run("train_and_register", HISTORY_DAYS[-1]).success
        assert platform.run("daily_lifecycle", DRIFT_DAY).success
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLOPS_"))}
    return {**inherited, **env}


@contextmanager
def webserver(env: dict[str, str], log: Path) -> Iterator[str]:
    port = free_port()
    command = [
        str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
        "-w", str(REPO / "workspace.yaml"),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with running(command, f"{base}/server_info", log, env={**env, "PWD": str(REPO)}):
        yield base


@contextmanager
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    executable = require_tool("chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = chromium.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            chromium.close()


def open_page(page, url: str) -> None:
    """Go to a UI page and wait for its data; dismiss the one-off community dialog if it shows."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    skip = page.get_by_role("button", name="Skip")
    if skip.count() and skip.first.is_visible():
        skip.first.click()


def test_ui_shows_the_asset_graph_drift_report_and_sensor(history, tmp_path):
    shots = artifacts()
    with webserver(history, tmp_path / "webserver.log") as base, browser() as page:
        graphql = GraphQL(base)

        # the same facts through the webserver's GraphQL API
        nodes = graphql(
            """{ assetNodes { assetKey { path } groupName kinds description
                 owners { ... on TeamAssetOwner { team } } } }"""
        )["assetNodes"]
        by_name = {"/".join(node["assetKey"]["path"]): node for node in nodes}
        assert {name: node["groupName"] for name, node in by_name.items()} == EXPECTED_ASSETS
        assert all(node["description"] and node["owners"] for node in nodes)
        assert {"evidently", "mlflow", "pandas"} <= set(
            by_name[f"{CONTRACT}/drift_report"]["kinds"]
        )
        assert "sklearn" in by_name[f"{CONTRACT}/trained_model"]["kinds"]
        drift = graphql(
            """query($k: AssetKeyInput!) { assetNodeOrError(assetKey: $k) { ... on AssetNode {
                 assetMaterializations(limit: 1) { partition metadataEntries { label
                   ... on FloatMetadataEntry { floatValue } ... on UrlMetadataEntry { url } } }
                 assetChecksOrError { ... on AssetChecks { checks { name
                   executionForLatestMaterialization { status evaluation { severity } } } } } } } }""",
            k={"path": [CONTRACT, "drift_report"]},
        )["assetNodeOrError"]
        latest = drift["assetMaterializations"][0]
        entries = {entry["label"]: entry for entry in latest["metadataEntries"]}
        share = entries["drift_share"]["floatValue"]
        assert latest["partition"] == DRIFT_DAY and share > 0.2  # incomes dropped on DRIFT_DAY
        assert entries["evidently_report"]["url"].startswith("file://")
        assert "/#/experiments/" in entries["mlflow_run"]["url"]
        checks = {c["name"]: c for c in drift["assetChecksOrError"]["checks"]}
        assert set(checks) == {"drift_share_within_threshold", "retraining_removed_drift"}
        check = checks["drift_share_within_threshold"]
        assert check["executionForLatestMaterialization"] == {
            "status": "FAILED",
            "evaluation": {"severity": "WARN"},
        }
        sensor = graphql.sensor()
        assert sensor["name"] == RETRAINING_SENSOR
        assert sensor["sensorState"]["status"] == "STOPPED"  # off until someone turns it on

        # 1. the asset graph: one group per model, expanded; every stage a node in its group
        open_page(page, f"{base}/asset-groups")
        page.get_by_text("Global asset lineage").first.click()
        page.keyboard.press("Alt+KeyE")  # the graph's "expand all groups" shortcut
        page.wait_for_timeout(1500)
        page.screenshot(path=shots / "asset-graph.png")
        for group, assets in GROUPS.items():
            open_page(page, f"{base}/locations/{LOCATION}/asset-groups/{group}/lineage")
            page.screenshot(path=shots / f"group-{group}.png")
            for stage in assets:  # long names are shortened in the middle ("registere…_version")
                node = page.get_by_text(re.compile(f"^{re.escape(stage[:8])}")).first
                node.wait_for(state="visible")

        # 2. drift_report: the latest drift share and the check result
        open_page(page, f"{base}/assets/{CONTRACT}/drift_report")
        page.get_by_text("drift_share", exact=True).first.wait_for(state="visible")
        assert page.get_by_text(str(share), exact=True).count() >= 1
        assert page.get_by_text(DRIFT_DAY).count() >= 1
        page.screenshot(path=shots / "drift-report.png", full_page=True)
        open_page(page, f"{base}/assets/{CONTRACT}/drift_report?view=checks")
        page.get_by_text("drift_share_within_threshold").first.wait_for(state="visible")
        page.get_by_text(f"drift share {share:.3f} vs threshold 0.2").first.wait_for()
        assert page.get_by_text("Failed", exact=True).count() >= 1
        page.screenshot(path=shots / "drift-report-checks.png")

        # 3. the sensor: shown stopped; turned on in the UI, the daemon ticks and retrains
        daemon = start_daemon(tmp_path / "daemon.log", env=history)
        try:
            open_page(page, f"{base}/locations/{LOCATION}/sensors/{RETRAINING_SENSOR}")
            page.get_by_text(RETRAINING_SENSOR).first.wait_for(state="visible")
            switch = page.locator("label[class*=formatSwitch] input[type=checkbox]")
            assert switch.count() == 1 and not switch.is_checked()
            page.locator("label[class*=formatSwitch]").click()
            tick = wait_for_tick(graphql, daemon)
            assert tick["status"] == "SUCCESS" and len(tick["runIds"]) == 1, tick
            open_page(page, f"{base}/locations/{LOCATION}/sensors/{RETRAINING_SENSOR}")
            assert page.locator("label[class*=formatSwitch] input[type=checkbox]").is_checked()
            page.screenshot(path=shots / "sensor.png")
        finally:
            stop(daemon)
            with contextlib.suppress(ProcessLookupError):  # the retraining run it launched
                os.killpg(daemon.pid, signal.SIGKILL)
    for name in ("asset-graph", "drift-report", "drift-report-checks", "sensor"):
        assert (shots / f"{name}.png").stat().st_size > 10_000


def wait_for_tick(graphql: GraphQL, daemon, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert daemon.poll() is None, "dagster-daemon exited"
        state = graphql.sensor()["sensorState"]
        ticks = [tick for tick in state["ticks"] if tick["status"] != "STARTED"]
        if state["status"] == "RUNNING" and ticks:
            return ticks[0]
        time.sleep(1)
    raise TimeoutError(f"{RETRAINING_SENSOR} did not tick within {timeout}s")
