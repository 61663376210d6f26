"""Kubernetes observations for playbook 1.1, 1.2 and 3.1: the backend's pods, the nodes, the
Deployment, recent Warning events and the Argo Rollout. Read-only; never asserts.

One client per run (`Kube`, built once by the `kube` fixture) from the profile's kubeconfig and
context, or the pod's service account (`in_cluster`). Credentials come from there, never from
the profile. Every request has the profile's timeout and no retry. A failure - 401, 403, 404,
an unreachable or hanging API, a broken kubeconfig - becomes an observation whose `error` is
one sentence naming the API, the request and what to do. An API that is unreachable or refuses
the credentials is asked once per run: the observations after it carry the same sentence at
once, so a dead cluster costs one timeout, not one per check.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from playbook import config
from playbook.probes.http import USER_AGENT

# Waiting reasons of a container that is not going to start by itself.
FAILING_WAITS = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull",
                           "CreateContainerConfigError", "CreateContainerError",
                           "RunContainerError", "InvalidImageName"})


def _age(when: dt.datetime | None, now: dt.datetime) -> str:
    if when is None:
        return "at an unknown time"
    seconds = max(0.0, (now - when).total_seconds())
    if seconds < 90:
        return f"{seconds:.0f} s ago"
    return f"{seconds / 60:.0f} min ago"


@dataclass(frozen=True)
class PodState:
    name: str
    phase: str
    ready: bool
    restarts: int
    waiting: str | None = None  # the container's waiting reason, e.g. CrashLoopBackOff
    waiting_message: str = ""
    last_exit_code: int | None = None
    last_finished: dt.datetime | None = None
    node: str | None = None
    image: str = ""

    @property
    def failing(self) -> bool:
        """Crash-looping (or stuck on its image or config). A container between two crashes
        briefly shows `running`: one that exited non-zero and restarted twice or more and is
        not ready counts as crash-looping too."""
        if self.waiting in FAILING_WAITS:
            return True
        return (not self.ready and self.restarts >= 2 and self.last_exit_code not in (None, 0))

    def describe(self) -> str:
        parts = [f"phase {self.phase}", "ready" if self.ready else "not ready"]
        if self.waiting:
            parts.append(f"waiting: {self.waiting}")
        parts.append(f"{self.restarts} restart{'s' if self.restarts != 1 else ''}")
        if self.last_exit_code is not None:
            parts.append(f"last exit code {self.last_exit_code}")
        return f"{self.name} ({', '.join(parts)})"


@dataclass(frozen=True)
class PodsObservation:
    where: str  # e.g. "pods app=... in namespace security-dashboard at https://..."
    pods: list[PodState] = field(default_factory=list)
    error: str | None = None

    @property
    def ready(self) -> list[PodState]:
        return [p for p in self.pods if p.phase == "Running" and p.ready]

    @property
    def not_ready(self) -> list[PodState]:
        return [p for p in self.pods if not (p.phase == "Running" and p.ready)]


@dataclass(frozen=True)
class NodeState:
    name: str
    ready: str  # the Ready condition's status: True, False or Unknown
    reason: str = ""
    message: str = ""

    def describe(self) -> str:
        why = f": {self.reason}" if self.reason else ""
        msg = f" - {self.message}" if self.message else ""
        return f"{self.name} (Ready={self.ready}{why}{msg})"


@dataclass(frozen=True)
class NodesObservation:
    where: str
    nodes: list[NodeState] = field(default_factory=list)
    error: str | None = None

    @property
    def not_ready(self) -> list[NodeState]:
        return [n for n in self.nodes if n.ready != "True"]


@dataclass(frozen=True)
class DeploymentObservation:
    where: str
    name: str
    desired: int = 0
    ready: int = 0
    available: int = 0
    updated: int = 0
    error: str | None = None


@dataclass(frozen=True)
class EventRecord:
    time: dt.datetime | None
    type: str
    reason: str
    object: str  # Kind/name
    message: str
    count: int = 1

    def describe(self, now: dt.datetime) -> str:
        times = f" x{self.count}" if self.count > 1 else ""
        return f"{self.object} {self.reason}{times} ({_age(self.time, now)}): {self.message}"


@dataclass(frozen=True)
class EventsObservation:
    where: str
    window_minutes: float
    events: list[EventRecord] = field(default_factory=list)  # newest first
    error: str | None = None


@dataclass(frozen=True)
class RolloutObservation:
    where: str
    name: str
    phase: str = ""
    message: str = ""
    stable_hash: str = ""
    current_hash: str = ""
    revision: str = ""
    image: str = ""
    error: str | None = None

    @property
    def on_stable(self) -> bool:
        return bool(self.stable_hash) and self.stable_hash == self.current_hash


@dataclass(frozen=True)
class LogLine:
    pod: str
    time: dt.datetime | None  # the container runtime's stamp (kubectl logs --timestamps)
    text: str


@dataclass(frozen=True)
class PodLogsObservation:
    """`kubectl logs -l <selector> --since=...`: the lines of every selected pod's container."""

    where: str
    since_seconds: int
    pods: list[str] = field(default_factory=list)
    lines: list[LogLine] = field(default_factory=list)  # oldest first, all pods merged
    pod_errors: list[str] = field(default_factory=list)  # pods whose log could not be read
    error: str | None = None  # the pods could not be listed at all


def _log_line(pod: str, raw: str) -> LogLine:
    stamp, _, text = raw.partition(" ")
    try:
        when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return LogLine(pod, None, raw)
    return LogLine(pod, when, text)


def _status_message(e: ApiException) -> str:
    try:
        body = json.loads(e.body or "")
        if isinstance(body, dict) and body.get("message"):
            return str(body["message"])
    except ValueError:
        pass
    return (e.body or "").strip()[:200] or str(e.reason or "")


class Kube:
    """The cluster's API for one run. Nothing is fetched until a probe asks."""

    def __init__(self, section: config.Kubernetes) -> None:
        self.section = section
        self.server = "the Kubernetes API"
        self._api: k8s.ApiClient | None = None
        self._fatal: str | None = None  # the API cannot be used at all this run

    # --- plumbing -----------------------------------------------------------------------

    @property
    def source(self) -> str:
        s = self.section
        if s.in_cluster:
            return "the in-cluster service account"
        where = s.kubeconfig or "the default kubeconfig ($KUBECONFIG or ~/.kube/config)"
        return f"kubeconfig {where}" + (f", context {s.context}" if s.context else "")

    def api(self) -> k8s.ApiClient | None:
        if self._api is not None or self._fatal is not None:
            return self._api
        cfg = k8s.Configuration()
        try:
            if self.section.in_cluster:
                k8s_config.load_incluster_config(client_configuration=cfg)
            else:
                k8s_config.load_kube_config(config_file=self.section.kubeconfig,
                                            context=self.section.context,
                                            client_configuration=cfg,
                                            persist_config=False)
        except (ConfigException, OSError, ValueError, TypeError) as e:
            text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            self._fatal = f"cannot use {self.source}: {text}"
            return None
        cfg.retries = False  # one try per request: a dead API fails fast, within the timeout
        self.server = cfg.host
        self._api = k8s.ApiClient(cfg)
        self._api.user_agent = USER_AGENT
        return self._api

    def close(self) -> None:
        if self._api is not None:
            self._api.close()

    def call(self, what: str, fn: Callable[[k8s.ApiClient, tuple[float, float]], Any],
             access: str = "read") -> tuple[Any, str | None]:
        """fn(api client, request timeout) -> (its result, None), or (None, the sentence
        saying why not). `what` completes "... when asked to <what>"; `access` is what a 403
        asks to grant (read for the probes; playbook.control writes)."""
        api = self.api()
        if api is None or self._fatal:
            return None, self._fatal
        timeout = self.section.timeout
        try:
            return fn(api, (timeout, timeout)), None
        except ApiException as e:
            return None, self._api_error(e, what, access)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            self._fatal = self._network_error(e, what)
            return None, self._fatal

    def _api_error(self, e: ApiException, what: str, access: str) -> str:
        detail = _status_message(e)
        at = f"Kubernetes API at {self.server}"
        if e.status == 401:
            self._fatal = (f"{at} refused the credentials (401 Unauthorized) - check the "
                           f"token in {self.source}")
            return self._fatal
        if e.status == 403:
            return (f"{at} forbids the suite to {what} (403 Forbidden: {detail}) - grant its "
                    f"identity {access} access to it (RBAC)")
        if e.status == 404:
            return (f"{at}: cannot {what}: not found (404: {detail}) - check the names and "
                    "the namespace in the profile's `kubernetes` section")
        if e.status == 0:
            self._fatal = f"{at} could not be reached: {e.reason}"
            return self._fatal
        return f"{at} answered {e.status} {e.reason} when asked to {what}: {detail}"

    def _network_error(self, e: BaseException, what: str) -> str:
        at = f"Kubernetes API at {self.server}"
        text = str(e)
        timeout = self.section.timeout
        if isinstance(e, urllib3.exceptions.NewConnectionError) or "refused" in text.lower():
            return (f"{at} is unreachable: connection refused - is the cluster up and the "
                    f"server in {self.source} right?")
        if isinstance(e, (urllib3.exceptions.TimeoutError, TimeoutError)):
            return (f"{at} did not answer within {timeout:g} s when asked to {what} (timeout) "
                    "- the API server is down, overloaded or filtered")
        if isinstance(e, urllib3.exceptions.NameResolutionError):
            return f"{at} is unreachable: its host name does not resolve ({text})"
        return f"{at} is unreachable: {type(e).__name__}: {text}"

    @property
    def ns(self) -> str:
        return self.section.namespace

    # --- observations ----------------------------------------------------------------------

    def pods(self) -> PodsObservation:
        s = self.section
        where = f"pods {s.selector} in namespace {s.namespace}"
        result, error = self.call(f"list {where}", lambda api, t: k8s.CoreV1Api(
            api).list_namespaced_pod(s.namespace, label_selector=s.selector,
                                     _request_timeout=t))
        where += f" at {self.server}"
        if error:
            return PodsObservation(where, error=error)
        return PodsObservation(where, [self._pod(p) for p in result.items])

    @staticmethod
    def _pod(pod: Any) -> PodState:
        status = pod.status
        ready = any(c.type == "Ready" and c.status == "True" for c in status.conditions or [])
        restarts, waiting, waiting_msg, code, finished, image = 0, None, "", None, None, ""
        for cs in status.container_statuses or []:
            restarts += cs.restart_count or 0
            image = image or cs.image or ""
            state = cs.state
            if waiting is None and state is not None and state.waiting is not None:
                waiting, waiting_msg = state.waiting.reason, state.waiting.message or ""
            last = cs.last_state.terminated if cs.last_state else None
            if last is not None and code is None:
                code, finished = last.exit_code, last.finished_at
        return PodState(pod.metadata.name, status.phase or "Unknown", ready, restarts, waiting,
                        waiting_msg, code, finished, pod.spec.node_name if pod.spec else None,
                        image)

    def nodes(self) -> NodesObservation:
        result, error = self.call("list nodes", lambda api, t: k8s.CoreV1Api(api).list_node(
            _request_timeout=t))
        where = f"nodes at {self.server}"
        if error:
            return NodesObservation(where, error=error)
        nodes = []
        for n in result.items:
            cond = next((c for c in n.status.conditions or [] if c.type == "Ready"), None)
            nodes.append(NodeState(n.metadata.name, cond.status if cond else "Unknown",
                                   (cond.reason or "") if cond else "no Ready condition",
                                   (cond.message or "") if cond else ""))
        return NodesObservation(where, nodes)

    def deployment(self) -> DeploymentObservation:
        s = self.section
        where = f"deployment {s.deployment} in namespace {s.namespace}"
        result, error = self.call(f"read {where}", lambda api, t: k8s.AppsV1Api(
            api).read_namespaced_deployment(s.deployment, s.namespace, _request_timeout=t))
        where += f" at {self.server}"
        if error:
            return DeploymentObservation(where, s.deployment, error=error)
        st = result.status
        desired = result.spec.replicas if result.spec.replicas is not None else 1
        return DeploymentObservation(where, s.deployment, desired, st.ready_replicas or 0,
                                     st.available_replicas or 0, st.updated_replicas or 0)

    def warning_events(self, now: dt.datetime | None = None) -> EventsObservation:
        s = self.section
        now = now or dt.datetime.now(dt.UTC)
        where = f"Warning events in namespace {s.namespace}"
        result, error = self.call(f"list {where}", lambda api, t: k8s.CoreV1Api(
            api).list_namespaced_event(s.namespace, field_selector="type=Warning",
                                       _request_timeout=t))
        where += f" at {self.server}"
        if error:
            return EventsObservation(where, s.warning_events_minutes, error=error)
        since = now - dt.timedelta(minutes=s.warning_events_minutes)
        events = []
        for e in result.items:
            when = e.last_timestamp or e.event_time or e.first_timestamp or (
                e.metadata.creation_timestamp if e.metadata else None)
            if e.type != "Warning" or (when is not None and when < since):
                continue
            obj = e.involved_object
            events.append(EventRecord(when, e.type, e.reason or "", f"{obj.kind}/{obj.name}",
                                      " ".join((e.message or "").split()), e.count or 1))
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        events.sort(key=lambda e: e.time or epoch, reverse=True)
        return EventsObservation(where, s.warning_events_minutes, events)

    def rollout(self) -> RolloutObservation:
        s = self.section
        name = s.rollout or ""
        where = f"Argo rollout {name} in namespace {s.namespace}"
        result, error = self.call(f"read {where}", lambda api, t: k8s.CustomObjectsApi(
            api).get_namespaced_custom_object("argoproj.io", "v1alpha1", s.namespace,
                                              "rollouts", name, _request_timeout=t))
        where += f" at {self.server}"
        if error:
            return RolloutObservation(where, name, error=error)
        status = result.get("status") or {}
        spec = result.get("spec") or {}
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        annotations = (result.get("metadata") or {}).get("annotations") or {}
        return RolloutObservation(
            where, name, str(status.get("phase") or "Unknown"), str(status.get("message") or ""),
            str(status.get("stableRS") or ""), str(status.get("currentPodHash") or ""),
            str(annotations.get("rollout.argoproj.io/revision") or ""),
            str(containers[0].get("image") or "") if containers else "")

    def pod_logs(self, since_seconds: int, tail_lines: int | None = None) -> PodLogsObservation:
        """The logs of the backend's pods (kubernetes.selector) since `since_seconds` ago, with
        the runtime's timestamps. A pod whose log cannot be read is named in pod_errors."""
        s = self.section
        pods = self.pods()
        where = f"logs of {pods.where} (since {since_seconds} s)"
        if pods.error:
            return PodLogsObservation(where, since_seconds, error=pods.error)
        lines: list[LogLine] = []
        errors: list[str] = []
        for pod in pods.pods:
            # Raw bytes: the client would parse a log that happens to be one JSON document.
            result, error = self.call(
                f"read the log of pod {pod.name} in namespace {s.namespace}",
                lambda api, t, name=pod.name: k8s.CoreV1Api(api).read_namespaced_pod_log(
                    name, s.namespace, since_seconds=since_seconds, timestamps=True,
                    tail_lines=tail_lines, _preload_content=False, _request_timeout=t))
            if error:
                errors.append(f"{pod.name}: {error}")
                continue
            text = result.data.decode("utf-8", errors="replace")
            lines += [_log_line(pod.name, raw) for raw in text.splitlines() if raw]
        epoch = dt.datetime.min.replace(tzinfo=dt.UTC)
        lines.sort(key=lambda line: line.time or epoch)
        return PodLogsObservation(where, since_seconds, [p.name for p in pods.pods], lines,
                                  errors)
