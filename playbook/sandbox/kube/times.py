"""Times as the Kubernetes API writes and reads them: RFC 3339 in UTC (seconds for objects,
microseconds for `kubectl logs --timestamps`) and Go durations ("500ms", "1m30s") in specs."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any


def ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def micro_ts(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text: str) -> float:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def parse_duration(text: Any) -> float:
    """A Go duration ("500ms", "2s", "1m30s") in seconds."""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|us|µs|ns|s|m|h)", str(text))
    if not parts or "".join(n + u for n, u in parts) != str(text):
        raise ValueError(text)
    return sum(float(n) * units[u] for n, u in parts)
