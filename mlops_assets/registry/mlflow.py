"""The MLflow layer: one typed resource for tracking runs and the Model Registry of every model.

`MlflowRegistry` probes the tracking server before use (MLflow's own HTTP retries would hang a
step for minutes), creates each contract's experiment with an explicit artifact location on a
local store (otherwise artifacts land in `./mlruns` of whatever directory a step runs in), opens
runs with `mlflow.start_run` as a context manager (ended as FAILED on any error), and gives each
registered model (`.model_of(contract)`) one champion lookup with a recorded alias history. mlflow is
imported inside functions: it takes seconds to import, and every step process and sensor tick
loads this code location.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field, PrivateAttr

from mlops_assets.failpoints import failpoint

if TYPE_CHECKING:
    import pandas as pd

    from mlops_assets.contracts import DataContract

if TYPE_CHECKING:
    from mlflow.entities.model_registry import ModelVersion
    from mlflow.tracking import MlflowClient

CHAMPION = "champion"
# MLflow stores scikit-learn models with skops, which loads only types it is told to trust; these
# are the ones the built-in pipelines add to skops' defaults. A team's own estimator adds its types
# through the contract's `model.trusted_types`; a stored model listing any other is not loaded.
SKOPS_TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.tree._tree.Tree",
)
# A version's place in promotion: "pending" from registration until the gates' verdict is applied,
# then "champion" or "not promoted"; "pending" that stays means the registration was cut short.
PROMOTION_TAG = "promotion"
HISTORY_TAG = "champion_history"
# Version tag (and trained-model card column): the digest of the model's files at training.
MODEL_DIGEST_TAG = "model_sha256"
# Training features logged with every model: what drift reports compare against.
REFERENCE_ARTIFACT = "reference/features.parquet"
_MAX_TAG_CHARS = 4_900  # MLflow caps tag values at 5000 characters


# MLflow's HTTP client retries 7 times with 2**n s backoff and waits 120 s per request by default:
# a tracking server that dies mid-step hung the step for 12 minutes. These bound one call to about
# a minute against a server that hangs and seconds against one that is down; the step's retry
# policy (`MLFLOW_RETRY_POLICY`) then takes over. Set any of them in the environment to override.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


class MlflowUnavailableError(Exception):
    """The MLflow tracking server did not answer."""


class RegistryError(Exception):
    """A registry operation was refused (unknown version, nothing to roll back to)."""


class ModelIntegrityError(RegistryError):
    """A model's files are not the ones recorded at training, or in a format that runs code."""


def check_reachable(tracking_uri: str, timeout_seconds: float = 5.0) -> None:
    """Raise `MlflowUnavailableError` naming the URI unless the tracking store can be used."""
    if tracking_uri.startswith(("http://", "https://")):
        request = urllib.request.Request(f"{tracking_uri.rstrip('/')}/health")
        username = os.environ.get("MLFLOW_TRACKING_USERNAME")
        if username:
            token = f"{username}:{os.environ.get('MLFLOW_TRACKING_PASSWORD', '')}"
            request.add_header(
                "Authorization", f"Basic {base64.b64encode(token.encode()).decode()}"
            )
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds):
                return
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise MlflowUnavailableError(
                f"MLflow tracking server {tracking_uri} is unreachable ({reason}); "
                "check MLFLOW_TRACKING_URI and that the server is running"
            ) from error
    elif tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def prepare_experiment(tracking_uri: str, name: str, artifact_location: str | None) -> str:
    """Create the experiment (with its artifact location) unless it exists; returns its id."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException:  # created concurrently by another step process
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def dagster_run_ended(instance: dg.DagsterInstance) -> Callable[[str], bool]:
    """Whether a Dagster run (by id) has ended or is unknown to `instance`."""

    def ended(run_id: str) -> bool:
        run = instance.get_run_by_id(run_id)
        return run is None or run.is_finished

    return ended


def _close_abandoned_runs(
    client: MlflowClient,
    experiment_id: str,
    tags: dict[str, str],
    dagster_run_ended: Callable[[str], bool],
) -> None:
    """End as FAILED the RUNNING runs of the same asset partition whose step is gone."""
    if not {"dagster/asset", "dagster/partition", "dagster/run_id"} <= tags.keys():
        return
    open_runs = client.search_runs(
        [experiment_id],
        filter_string=(
            "attributes.status = 'RUNNING' "
            f"and tags.`dagster/asset` = '{tags['dagster/asset']}' "
            f"and tags.`dagster/partition` = '{tags['dagster/partition']}'"
        ),
    )
    for run in open_runs:
        owner = run.data.tags.get("dagster/run_id", "")
        if owner == tags["dagster/run_id"] or dagster_run_ended(owner):
            client.set_tag(
                run.info.run_id,
                "mlops/closed_because",
                "the step that opened it stopped before ending it (tracking server outage or a "
                f"killed step); closed by Dagster run {tags['dagster/run_id']}",
            )
            client.set_terminated(run.info.run_id, "FAILED")


def model_digest(folder: Path) -> str:
    """SHA-256 over every file of a model directory: relative paths and contents, in path order.

    `registered_model_meta` is left out: MLflow writes it into a `models:/` download.
    """
    digest = hashlib.sha256()
    files = (p for p in folder.rglob("*") if p.is_file() and p.name != "registered_model_meta")
    for path in sorted(files):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _require_skops(folder: Path, model_uri: str, trusted_types: tuple[str, ...]) -> None:
    """Refuse a model not stored with skops, or one whose skops allow-list (which MLflow reads from
    the stored model itself) names a type neither the platform nor the contract trusts."""
    import yaml

    flavor = yaml.safe_load((folder / "MLmodel").read_text()).get("flavors", {}).get("sklearn", {})
    serialization = flavor.get("serialization_format")
    if serialization != "skops":
        raise ModelIntegrityError(
            f"{model_uri} is stored as {serialization or 'no scikit-learn flavor'}, not skops: "
            "pickle formats run code when loaded; refusing to load it"
        )
    untrusted = sorted(
        set(flavor.get("skops_trusted_types") or ()) - {*SKOPS_TRUSTED_TYPES, *trusted_types}
    )
    if untrusted:
        raise ModelIntegrityError(
            f"{model_uri} holds types the contract's model.trusted_types does not list: "
            f"{untrusted}; refusing to load it (list them only if you trust their packages)"
        )


@dataclass(frozen=True)
class AliasMove:
    """One move of the champion alias: the record kept in the registry and shown in the UI."""

    previous_version: str | None
    new_version: str
    reason: str
    dagster_run_id: str
    moved_at: str
    moved: bool = True


class MlflowRegistry(dg.ConfigurableResource):
    """MLflow tracking and Model Registry for every contract's model (MLFLOW_TRACKING_URI)."""

    tracking_uri: str = Field(description="MLflow tracking (and registry) URI")
    artifact_root: str | None = Field(
        default=None, description="Artifact location for new experiments (local stores only)"
    )
    ui_url: str = Field(
        default="http://127.0.0.1:5000", description="Where the MLflow UI is served"
    )
    cache_dir: str = Field(description="Local cache of downloaded reference data (safe to delete)")

    _client: Any = PrivateAttr(default=None)

    def model(self, name: str, description: str = "") -> RegisteredModel:
        """The registry view of one registered model, by name (it loads only built-in models)."""
        return RegisteredModel(self, name, description)

    def model_of(self, contract: DataContract) -> RegisteredModel:
        """The registry view of a contract's model: its name, description and trusted types."""
        return RegisteredModel(
            self, contract.model_name, contract.spec.description, contract.trusted_types
        )

    @contextmanager
    def tracked_run(
        self,
        experiment: str,
        run_name: str,
        tags: dict[str, str],
        dagster_run_ended: Callable[[str], bool] = lambda _run_id: False,
    ) -> Iterator[Any]:
        """An MLflow run in `experiment`, ended FINISHED on success and FAILED on any error.

        A step whose tracking server died under it cannot end its run, which stays RUNNING: the
        next attempt at the same asset partition ends such runs as FAILED first, when they were
        opened by an earlier attempt of this Dagster run or by a Dagster run that has ended.
        """
        import mlflow

        client = self.client()
        experiment_id = prepare_experiment(self.tracking_uri, experiment, self.artifact_root)
        _close_abandoned_runs(client, experiment_id, tags, dagster_run_ended)
        with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags) as run:
            yield run

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url}/#/experiments/{experiment_id}/runs/{run_id}"

    def load_model(
        self, model_uri: str, expected_digest: str | None, trusted_types: tuple[str, ...] = ()
    ) -> Any:
        """The scikit-learn pipeline behind a model URI, loaded only if its files match the digest
        recorded when it was trained and it is stored with skops (which runs no code on load),
        holding no types but scikit-learn's and `trusted_types`.

        MLflow would otherwise load whatever serialization the stored `MLmodel` declares: whoever
        can write to the artifact store could run code in every step and the model server.
        """
        import mlflow.artifacts
        import mlflow.sklearn

        self.client()
        if not expected_digest:
            raise ModelIntegrityError(
                f"{model_uri} has no recorded {MODEL_DIGEST_TAG}: it was not trained by this "
                "platform (or before checksums were recorded); retrain it, refusing to load it"
            )
        with tempfile.TemporaryDirectory() as folder:
            local = Path(
                mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=folder)
            )
            digest = model_digest(local)
            if digest != expected_digest:
                raise ModelIntegrityError(
                    f"{model_uri}: its files do not match the {MODEL_DIGEST_TAG} recorded when it "
                    f"was trained ({expected_digest[:12]}... expected, {digest[:12]}... found); "
                    "refusing to load it"
                )
            _require_skops(local, model_uri, trusted_types)
            return mlflow.sklearn.load_model(str(local))

    def load_reference(self, run_id: str) -> pd.DataFrame:
        """The training features logged with a model's run, downloaded once per run."""
        import mlflow.artifacts
        import pandas as pd

        cached = Path(self.cache_dir) / "references" / f"{run_id}.parquet"
        if not cached.exists():
            self.client()
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cached.parent) as folder:
                downloaded = mlflow.artifacts.download_artifacts(
                    run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=folder
                )
                os.replace(
                    downloaded, cached
                )  # a complete file or none, even with concurrent steps
        return pd.read_parquet(cached)

    def client(self) -> MlflowClient:
        """The registry client; the server is probed once per resource instance (that is, per step)."""
        import mlflow
        from mlflow.tracking import MlflowClient

        mlflow.set_tracking_uri(self.tracking_uri)  # model URIs (models:/...) resolve through it
        for name, value in HTTP_LIMITS.items():
            os.environ.setdefault(name, value)
        if self._client is None:
            check_reachable(self.tracking_uri)
            self._client = MlflowClient(
                tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri
            )
        return self._client


class RegisteredModel:
    """One registered model: the `champion` alias (one lookup), registration and alias history."""

    def __init__(
        self,
        registry: MlflowRegistry,
        model_name: str,
        description: str = "",
        trusted_types: tuple[str, ...] = (),
    ) -> None:
        self.registry = registry
        self.model_name = model_name
        self.description = description
        self.trusted_types = trusted_types

    def client(self) -> MlflowClient:
        return self.registry.client()

    def champion(self) -> ModelVersion | None:
        """The version the `champion` alias points to, or None before the first promotion."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client().get_model_version_by_alias(self.model_name, CHAMPION)
        except MlflowException as error:
            if error.error_code in (
                "RESOURCE_DOES_NOT_EXIST",
                "INVALID_PARAMETER_VALUE",
                "NOT_FOUND",
            ):
                return None
            raise

    def champion_and_model(self) -> tuple[ModelVersion | None, Any | None]:
        """The champion version and its model, or (None, None) before the first promotion."""
        champion = self.champion()
        if champion is None:
            return None, None
        return champion, self.load_version(champion)

    def load_version(self, version: ModelVersion) -> Any:
        """A registered version's pipeline, checked against the digest it was registered with."""
        return self.registry.load_model(
            f"models:/{self.model_name}/{version.version}",
            version.tags.get(MODEL_DIGEST_TAG),
            self.trusted_types,
        )

    def shadow_of(self, champion: ModelVersion, partition: str, watch_days: int) -> str | None:
        """The version `champion` replaced by a promotion, while `partition` is in the watch
        window: the days after the champion's training day, up to `watch_days` of them. None
        for a first champion, for a champion restored by a rollback, and outside the window."""
        from datetime import date, timedelta

        tags = champion.tags
        previous = tags.get("champion/previous_version", "none")
        trained_on = tags.get("dagster/partition", "")
        if previous == "none" or tags.get("champion/reason", "").startswith("rollback:"):
            return None
        try:
            end = date.fromisoformat(trained_on) + timedelta(days=watch_days)
        except ValueError:  # not trained on a daily partition: no window to watch
            return None
        return previous if trained_on < partition <= end.isoformat() else None

    def require_champion(self) -> ModelVersion:
        """The champion version; a clear error before the first promotion."""
        champion = self.champion()
        if champion is None:
            raise RegistryError(
                f"No {CHAMPION!r} version of {self.model_name!r} yet: materialize the training and "
                "registry assets (train_and_register_job) first"
            )
        return champion

    def load_champion(self) -> tuple[ModelVersion, Any]:
        champion = self.require_champion()
        return champion, self.load_version(champion)

    def register(
        self, model_uri: str, run_id: str, model_id: str | None, tags: dict[str, str]
    ) -> ModelVersion:
        """Register the model logged by `run_id`; a retry finds the version made by an earlier try."""
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            client.create_registered_model(self.model_name, description=self.description)
        except MlflowException as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        existing = client.search_model_versions(f"name='{self.model_name}' and run_id='{run_id}'")
        if existing:
            version = existing[0]
            for key, value in tags.items():
                client.set_model_version_tag(self.model_name, version.version, key, value)
            return client.get_model_version(self.model_name, version.version)
        return client.create_model_version(
            self.model_name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
        )

    def set_version_tags(self, version: str, tags: dict[str, str]) -> None:
        client = self.client()
        for key, value in tags.items():
            client.set_model_version_tag(self.model_name, version, key, value)

    def move_champion(self, version: str, reason: str, dagster_run_id: str) -> AliasMove:
        """Point `champion` at `version` and record the move (version tags and alias history).

        Crash-safe by order: the version's tags record the move first, then the alias moves, then
        the model's history records it. A crash at any point is repaired by running the move
        again: if the alias already points at `version`, a missing history entry is added from
        the tags.
        """
        client = self.client()
        version = str(version)
        self.require_version(version)
        current = self.champion()
        previous = str(current.version) if current is not None else None
        now = datetime.now(UTC).isoformat(timespec="seconds")
        if previous == version:
            repaired = self._record_in_history(version)
            note = "already champion; history repaired" if repaired else "already champion"
            return AliasMove(previous, version, f"{note}; {reason}", dagster_run_id, now, False)
        self.set_version_tags(
            version,
            {
                "champion/promoted_at": now,
                "champion/previous_version": previous or "none",
                "champion/reason": reason,
                "champion/dagster_run_id": dagster_run_id,
            },
        )
        failpoint("promotion.before_alias")
        client.set_registered_model_alias(self.model_name, CHAMPION, version)
        failpoint("promotion.after_alias")
        self._record_in_history(version)
        return AliasMove(previous, version, reason, dagster_run_id, now)

    def _record_in_history(self, version: str) -> bool:
        """Append the move to `version` (as its tags describe it) unless the history ends with it."""
        recorded = self.alias_history()
        moves = [move for move in recorded if move["moved"]]
        if moves and moves[-1]["new_version"] == version:
            self.set_version_tags(version, {PROMOTION_TAG: "champion"})
            return False
        tags = self.client().get_model_version(self.model_name, version).tags
        previous = tags.get("champion/previous_version", "none")
        move = AliasMove(
            None if previous == "none" else previous,
            version,
            tags.get("champion/reason", "recorded on repair"),
            tags.get("champion/dagster_run_id", ""),
            tags.get("champion/promoted_at", datetime.now(UTC).isoformat(timespec="seconds")),
        )
        history = [*recorded, asdict(move)]
        while len(json.dumps(history)) > _MAX_TAG_CHARS and len(history) > 1:
            history.pop(0)
        self.client().set_registered_model_tag(self.model_name, HISTORY_TAG, json.dumps(history))
        self.set_version_tags(version, {PROMOTION_TAG: "champion"})
        return True

    def alias_history(self) -> list[dict[str, Any]]:
        """Recorded champion moves, oldest first (the most recent ones when the history is long)."""
        from mlflow.exceptions import MlflowException

        try:
            model = self.client().get_registered_model(self.model_name)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise
        return json.loads(model.tags.get(HISTORY_TAG, "[]"))

    def require_version(self, version: str) -> ModelVersion:
        from mlflow.exceptions import MlflowException

        client = self.client()
        try:
            return client.get_model_version(self.model_name, str(version))
        except MlflowException:
            existing = sorted(
                int(v.version) for v in client.search_model_versions(f"name='{self.model_name}'")
            )
            raise RegistryError(
                f"Model version {version} of {self.model_name!r} does not exist; "
                f"existing versions: {', '.join(map(str, existing)) or 'none'}"
            ) from None

    def rollback(self, to_version: str | None, reason: str, dagster_run_id: str) -> AliasMove:
        """Re-point `champion` to `to_version`, or to the version it pointed to before the last move."""
        if to_version is None:
            current = self.champion()
            if current is None:
                raise RegistryError(
                    f"No previous champion of {self.model_name!r} to roll back to; name a version"
                )
            self._record_in_history(str(current.version))  # a promotion cut short by a crash
            to_version = [move for move in self.alias_history() if move["moved"]][-1][
                "previous_version"
            ]
            if to_version is None:
                raise RegistryError(
                    f"Version {current.version} was the first champion of {self.model_name!r}; "
                    "there is nothing before it to roll back to"
                )
        return self.move_champion(str(to_version), f"rollback: {reason}", dagster_run_id)

    def version_url(self, version: str) -> str:
        return f"{self.registry.ui_url}/#/models/{self.model_name}/versions/{version}"
