"""An emulated Kubernetes API (kmock, real HTTP on 127.0.0.1) and a test-only "kubelet".

The official `kubernetes` client, as used by K8sRunLauncher and k8s_job_executor, talks to the
emulator exactly as to a cluster. The kubelet runs each created Job's container as a local
process: its command and args, its environment resolved from `env`/`envFrom` (ConfigMaps and
Secrets read back from the API), in a fresh working folder (the pod's disk), and then patches the
Job's status the way the Job controller would.
"""

from __future__ import annotations

import asyncio
import base64
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import kmock
import yaml
from kubernetes import client

RESOURCES = {
    "batch/v1/jobs": ("Job", {"status"}),
    "v1/pods": ("Pod", set()),
    "v1/events": ("Event", set()),
    "v1/configmaps": ("ConfigMap", set()),
    "v1/secrets": ("Secret", set()),
}


@contextmanager
def emulated_kubernetes() -> Iterator[str]:
    """A stateful Kubernetes API emulator on a free port; yields its URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    emulator = kmock.KubernetesEmulator()
    server = kmock.Server(emulator)

    async def start() -> str:
        await emulator.__aenter__()
        for key, (kind, subresources) in RESOURCES.items():
            emulator.resources[key] = kmock.ResourceInfo(
                kind=kind,
                namespaced=True,
                verbs={"get", "list", "watch", "create", "update", "patch", "delete"},
                subresources=subresources,
            )
        await server.__aenter__()
        return str(server.url).rstrip("/")

    async def finish() -> None:
        await server.__aexit__(None, None, None)
        await emulator.__aexit__(None, None, None)

    try:
        yield asyncio.run_coroutine_threadsafe(start(), loop).result(timeout=30)
    finally:
        asyncio.run_coroutine_threadsafe(finish(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def write_kubeconfig(path: Path, url: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "emulated", "cluster": {"server": url}}],
                "users": [{"name": "test", "user": {"token": "test"}}],
                "contexts": [
                    {"name": "emulated", "context": {"cluster": "emulated", "user": "test"}}
                ],
                "current-context": "emulated",
            }
        )
    )
    return path


def api_client(url: str) -> client.ApiClient:
    return client.ApiClient(client.Configuration(host=url))


@dataclass
class Kubelet:
    """Runs every Job the API holds in `namespace` once, as a local process, and reports back."""

    url: str
    namespace: str
    pods_dir: Path
    # Paths inside the image mapped to this machine (the `dagster` executable, DAGSTER_HOME).
    executables: dict[str, str]
    env_overrides: dict[str, str]
    started: dict[str, subprocess.Popen] = field(default_factory=dict)
    finished: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        api = api_client(self.url)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for process in self.started.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as error:
                self.errors.append(repr(error))
            time.sleep(0.3)

    def _tick(self) -> None:
        jobs = {
            job.metadata.name: job for job in self.batch.list_namespaced_job(self.namespace).items
        }
        for name, job in jobs.items():
            if name not in self.started:
                self.started[name] = self._start(job)
        for name, process in self.started.items():
            if name in self.finished:
                continue
            if name not in jobs:  # deleted: the controller stops its pods
                if process.poll() is None:
                    process.terminate()
                self.finished[name] = process.wait()
                continue
            code = process.poll()
            if code is not None:
                self.finished[name] = code
                status = {"succeeded": 1} if code == 0 else {"failed": 1}
                self.batch.patch_namespaced_job_status(name, self.namespace, {"status": status})

    def _start(self, job: client.V1Job) -> subprocess.Popen:
        spec = job.spec.template.spec
        (container,) = spec.containers
        command = [*(container.command or []), *(container.args or [])]
        command[0] = self.executables.get(command[0], command[0])
        env = {"PATH": os.environ["PATH"], **self._environment(container, job)}
        env.update(self.env_overrides)
        pod_dir = self.pods_dir / job.metadata.name
        pod_dir.mkdir(parents=True)
        log = (pod_dir / "pod.log").open("w")
        self.batch.patch_namespaced_job_status(
            job.metadata.name, self.namespace, {"status": {"active": 1}}
        )
        return subprocess.Popen(
            command, env=env, cwd=pod_dir, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip

    def _environment(self, container: client.V1Container, job: client.V1Job) -> dict[str, str]:
        env: dict[str, str] = {}
        for source in container.env_from or []:
            if source.config_map_ref:
                env.update(self._config_map(source.config_map_ref.name))
            if source.secret_ref:
                env.update(self._secret(source.secret_ref.name))
        for variable in container.env or []:
            if variable.value is not None:
                env[variable.name] = variable.value
            elif variable.value_from and variable.value_from.secret_key_ref:
                ref = variable.value_from.secret_key_ref
                env[variable.name] = self._secret(ref.name)[ref.key]
            elif variable.value_from and variable.value_from.config_map_key_ref:
                ref = variable.value_from.config_map_key_ref
                env[variable.name] = self._config_map(ref.name)[ref.key]
            elif variable.value_from and variable.value_from.field_ref:
                env[variable.name] = f"{job.metadata.name}-pod"
        return env

    def _config_map(self, name: str) -> dict[str, str]:
        return dict(self.core.read_namespaced_config_map(name, self.namespace).data or {})

    def _secret(self, name: str) -> dict[str, str]:
        secret = self.core.read_namespaced_secret(name, self.namespace)
        values = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        return {**values, **(secret.string_data or {})}
