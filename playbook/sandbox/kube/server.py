"""The supervisor addon (see ADDONS in supervisor.py) that runs the sandbox's Kubernetes API:
uvicorn on 127.0.0.1:<sandbox.ports.kube> inside the supervisor's event loop, the controllers
stepping every TICK, and the kubeconfig written to <state dir>/kubeconfig (0600) and named in
`playbook sandbox status`. A profile without sandbox.ports.kube has no Kubernetes API.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

import uvicorn
import yaml

from playbook.sandbox.kube.api import Api
from playbook.sandbox.kube.cluster import Cluster
from playbook.sandbox.kube.rbac import Rbac
from playbook.sandbox.supervisor import Supervisor

KUBECONFIG_FILE = "kubeconfig"
TICK = 0.25  # seconds between two steps of the controllers
START_TIMEOUT = 10.0  # seconds for uvicorn to listen


class _Server(uvicorn.Server):
    """uvicorn inside the supervisor's loop: the supervisor owns the signals."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def _controller(cluster: Cluster, sup: Supervisor) -> None:
    while not sup.stopping.is_set():
        cluster.tick()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sup.stopping.wait(), TICK)


async def start(sup: Supervisor) -> None:
    port = sup.sb.ports.kube
    if port is None:
        return  # a profile without sandbox.ports.kube: no Kubernetes API
    cluster = Cluster(sup)
    rbac = Rbac()
    url = f"http://127.0.0.1:{port}"
    path = sup.dir / KUBECONFIG_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(rbac.kubeconfig(url), f, sort_keys=False)
    server = _Server(uvicorn.Config(Api(cluster, rbac), host="127.0.0.1", port=port,
                                    log_level="warning", access_log=False, lifespan="off"))
    tasks = [asyncio.create_task(server.serve()), asyncio.create_task(_controller(cluster, sup))]

    async def stop() -> None:
        await sup.stopping.wait()
        server.should_exit = True

    tasks.append(asyncio.create_task(stop()))
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if tasks[0].done() or time.monotonic() > deadline:
            raise RuntimeError(f"the Kubernetes API did not start on 127.0.0.1:{port}"
                               + (f": {tasks[0].exception()}" if tasks[0].done() else ""))
        await asyncio.sleep(0.02)
    sup.extra_components["kubernetes"] = {"url": url, "port": port, "kubeconfig": str(path),
                                          "pid": os.getpid()}
    sup.kube_tasks = tasks  # type: ignore[attr-defined] - keeps the tasks referenced
    sup.write_state()
