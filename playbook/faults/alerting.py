"""The alert path alone: a synthetic alert posted to Alertmanager, as Prometheus would post a
firing rule. Proves routing, receivers and the pager without breaking anything."""

from __future__ import annotations

from dataclasses import dataclass

from playbook.control import alertmanager as control
from playbook.control.context import Context
from playbook.faults.base import Fault


@dataclass
class SyntheticAlert(Fault):
    kind = "alertmanager-synthetic-alert"
    severity: str = "P0"
    probe_id: str = ""

    @property
    def description(self) -> str:
        return f"synthetic {self.severity} alert probe_id={self.probe_id}"

    def prepare(self, ctx: Context) -> None:
        self.probe_id = self.probe_id or control.new_probe_id()

    def _post(self, ctx: Context, resolve: bool) -> None:
        obs = control.post_alerts(ctx.alertmanager, [control.synthetic_alert(
            self.probe_id, self.severity, resolve=resolve)])
        if not obs.ok:
            raise RuntimeError(obs.problem())

    def inject(self, ctx: Context) -> None:
        self._post(ctx, resolve=False)

    def revert(self, ctx: Context) -> None:
        self._post(ctx, resolve=True)
