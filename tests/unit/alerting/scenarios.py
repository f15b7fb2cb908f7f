"""Scripted failure scenarios for correlation tests: the demo fleet's incidents and hand-made
ones, as the alert signals each failure raises, tagged with the failure they belong to.

A test feeds the signals in time order and checks that alerts of one failure share an
incident and alerts of different failures do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vigil.domain.alerts import AlertSignal

BASE_NS = 1_764_000_000 * 1_000_000_000  # a fixed instant, so runs are reproducible
MINUTE_NS = 60 * 1_000_000_000


@dataclass(frozen=True)
class Step:
    minute: float
    failure: str
    origin: str
    title: str
    severity: str = "high"
    host: str | None = None
    service: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    fingerprint: str | None = None
    resolved: bool = False
    evidence: tuple[dict[str, Any], ...] = ()

    def signal(self, base_ns: int = BASE_NS) -> AlertSignal:
        return AlertSignal(
            origin=self.origin,
            title=self.title,
            severity=self.severity,  # type: ignore[arg-type]
            time_ns=base_ns + int(self.minute * MINUTE_NS),
            host=self.host,
            service=self.service,
            labels=dict(self.labels),
            fingerprint=self.fingerprint,
            resolved=self.resolved,
            evidence=list(self.evidence),
        )


DISK_FILLING = [
    Step(
        0,
        "disk",
        "anomaly",
        "disk.used_percent anomalous on web-03",
        "medium",
        host="web-03",
        labels={"series": "disk.used_percent{host=web-03,path=/var}"},
        fingerprint="anomaly:disk.used_percent{host=web-03,path=/var}",
    ),
    Step(
        20,
        "disk",
        "predictive",
        "/var on web-03 reaches 100% in ~3.2 days",
        "high",
        host="web-03",
        labels={"series": "disk.used_percent{host=web-03,path=/var}"},
        fingerprint="prediction:disk.used_percent{host=web-03,path=/var}",
    ),
    Step(
        180,
        "disk",
        "log",
        "write failed: No space left on device",
        "high",
        host="web-03",
        service="nginx",
        fingerprint="template:t-enospc",
    ),
    Step(
        181,
        "disk",
        "error",
        "OSError: [Errno 28] No space left on device",
        "critical",
        host="web-03",
        service="web-api",
        fingerprint="errgroup:oserror-28",
    ),
]

MEMORY_LEAK = [
    Step(
        5,
        "memory",
        "anomaly",
        "mem.used_percent anomalous on app-02",
        "medium",
        host="app-02",
        fingerprint="anomaly:mem.used_percent{host=app-02}",
    ),
    Step(
        45,
        "memory",
        "predictive",
        "memory on app-02 exhausted in ~2 h",
        "high",
        host="app-02",
        fingerprint="prediction:mem.used_percent{host=app-02}",
    ),
    Step(
        125,
        "memory",
        "log",
        "Out of memory: Killed process 4242 (java)",
        "critical",
        host="app-02",
        fingerprint="template:t-oom",
    ),
    Step(
        126,
        "memory",
        "alertmanager",
        "ContainerRestarted: payments OOMKilled",
        "high",
        host="app-02",
        service="payments",
        labels={"alertname": "ContainerRestarted", "reason": "OOMKilled"},
        fingerprint="am-payments-restart",
    ),
]

BAD_DEPLOY = [
    Step(
        60,
        "deploy",
        "error",
        "NullPointerException in CartService.total",
        "high",
        host="app-01",
        service="checkout",
        labels={"release": "checkout@2.4.1"},
        fingerprint="errgroup:npe-cart",
    ),
    Step(
        61,
        "deploy",
        "error",
        "NullPointerException in CartService.total",
        "high",
        host="app-03",
        service="checkout",
        labels={"release": "checkout@2.4.1"},
        fingerprint="errgroup:npe-cart",
    ),
    Step(
        62,
        "deploy",
        "log",
        "checkout: HTTP 500 responses bursting",
        "high",
        host="app-03",
        service="checkout",
        fingerprint="burst:t-http500",
    ),
    Step(
        63,
        "deploy",
        "alertmanager",
        "CheckoutHighErrorRate",
        "critical",
        service="checkout",
        labels={"alertname": "CheckoutHighErrorRate", "job": "checkout"},
        fingerprint="am-checkout-5xx",
    ),
    Step(
        64,
        "deploy",
        "anomaly",
        "http_requests.rate_5xx anomalous for checkout",
        "medium",
        service="checkout",
        fingerprint="anomaly:http_requests.rate_5xx{service=checkout}",
    ),
]

CPU_SPIKE = [
    Step(
        70,
        "cpu",
        "anomaly",
        "cpu.usage_user anomalous on node-7",
        "medium",
        host="node-7",
        fingerprint="anomaly:cpu.usage_user{host=node-7}",
    ),
    Step(
        72,
        "cpu",
        "alertmanager",
        "HighCPULoad on node-7:9100",
        "high",
        host="node-7",
        labels={"alertname": "HighCPULoad", "instance": "node-7:9100"},
        fingerprint="am-node7-cpu",
    ),
]

FLAPPING_INTERFACE = [
    Step(
        65,
        "flap",
        "snmp",
        "Interface Gi0/1 down on sw-core-1",
        "high",
        host="sw-core-1",
        labels={"ifName": "Gi0/1"},
    ),
    Step(
        66,
        "flap",
        "snmp",
        "Interface Gi0/1 down on sw-core-1",
        "high",
        host="sw-core-1",
        labels={"ifName": "Gi0/1"},
        resolved=True,
    ),
    Step(
        67,
        "flap",
        "snmp",
        "Interface Gi0/1 down on sw-core-1",
        "high",
        host="sw-core-1",
        labels={"ifName": "Gi0/1"},
    ),
    Step(
        67.5,
        "flap",
        "log",
        "%LINK-3-UPDOWN: Interface GigabitEthernet0/1, changed state to down",
        "medium",
        host="sw-core-1",
        fingerprint="template:t-updown",
    ),
    Step(
        68,
        "flap",
        "snmp",
        "Interface Gi0/1 down on sw-core-1",
        "high",
        host="sw-core-1",
        labels={"ifName": "Gi0/1"},
        resolved=True,
    ),
    Step(
        69,
        "flap",
        "snmp",
        "Interface Gi0/1 down on sw-core-1",
        "high",
        host="sw-core-1",
        labels={"ifName": "Gi0/1"},
    ),
]

# The demo fleet's five failures, overlapping in time: five incidents, no more, no fewer.
DEMO_FLEET = sorted(
    DISK_FILLING + MEMORY_LEAK + BAD_DEPLOY + CPU_SPIKE + FLAPPING_INTERFACE, key=lambda s: s.minute
)

# Hand-made: an upstream database failure and its downstream errors (linked by topology: the
# orders service names db-01's postgres as a dependency through its alerts' labels), while an
# unrelated certificate warning fires on another host at the same time.
UPSTREAM_DATABASE = [
    Step(
        0,
        "db",
        "alertmanager",
        "PostgresDown",
        "critical",
        host="db-01",
        service="postgres",
        labels={"alertname": "PostgresDown"},
        fingerprint="am-pg-down",
    ),
    Step(
        1,
        "db",
        "error",
        "OperationalError: connection refused",
        "high",
        host="app-05",
        service="orders",
        fingerprint="errgroup:orders-connrefused",
    ),
    Step(
        1.5,
        "cert",
        "alertmanager",
        "TLSCertificateExpiring in 9 days",
        "low",
        host="lb-01",
        service="haproxy",
        labels={"alertname": "TLSCertificateExpiring"},
        fingerprint="am-cert",
    ),
]
UPSTREAM_DEPENDENCIES = [("orders", "postgres")]

# Hand-made: the same symptom on several hosts at once is one (fleet-wide) incident.
FLEET_WIDE = [
    Step(
        i * 0.5,
        "ntp",
        "alertmanager",
        f"ClockSkew on ntp-client-{i}",
        "medium",
        host=f"ntp-client-{i}",
        labels={"alertname": "ClockSkew"},
        fingerprint=f"am-skew-{i}",
    )
    for i in range(5)
]

# Hand-made: one host, two services, two unrelated problems at the same time.
SAME_HOST_DIFFERENT_PROBLEMS = [
    Step(
        0,
        "search",
        "log",
        "search: HTTP 500 errors bursting",
        "high",
        host="app-09",
        service="search",
        fingerprint="burst:search-500",
    ),
    Step(
        2,
        "cert",
        "alertmanager",
        "billing certificate expires in 10 days",
        "low",
        host="app-09",
        service="billing",
        labels={"alertname": "CertExpiry"},
        fingerprint="am-billing-cert",
    ),
]

# Hand-made: a grouping rule forces alerts by their "cluster" label, whatever the hosts.
CLUSTER_RULE = {
    "name": "by cluster",
    "matchers": [{"name": "origin", "op": "=", "value": "alertmanager"}],
    "group_by": ["cluster"],
    "window_minutes": 60,
}
CLUSTERS = [
    Step(
        0,
        "eu",
        "alertmanager",
        "KubeNodeNotReady",
        "high",
        host="k8s-eu-1",
        labels={"alertname": "KubeNodeNotReady", "cluster": "eu-1"},
        fingerprint="am-eu-node1",
    ),
    Step(
        1,
        "us",
        "alertmanager",
        "KubeNodeNotReady",
        "high",
        host="k8s-us-4",
        labels={"alertname": "KubeNodeNotReady", "cluster": "us-1"},
        fingerprint="am-us-node4",
    ),
    Step(
        2,
        "eu",
        "alertmanager",
        "KubePodCrashLooping api",
        "medium",
        host="k8s-eu-7",
        labels={"alertname": "KubePodCrashLooping", "cluster": "eu-1"},
        fingerprint="am-eu-crash",
    ),
]

# Hand-made: the same problem on the same node hours apart, after it was resolved, is a new
# incident.
RECURRENCE_LATER = [
    Step(
        0,
        "cpu-morning",
        "alertmanager",
        "HighCPULoad on node-3:9100",
        "high",
        host="node-3",
        labels={"alertname": "HighCPULoad"},
        fingerprint="am-node3-cpu",
    ),
    Step(
        10,
        "cpu-morning",
        "alertmanager",
        "HighCPULoad on node-3:9100",
        "high",
        host="node-3",
        labels={"alertname": "HighCPULoad"},
        fingerprint="am-node3-cpu",
        resolved=True,
    ),
    Step(
        300,
        "cpu-afternoon",
        "anomaly",
        "cpu.usage_user anomalous on node-3",
        "medium",
        host="node-3",
        fingerprint="anomaly:cpu.usage_user{host=node-3}",
    ),
]

SCENARIOS: dict[str, list[Step]] = {
    "demo_fleet": DEMO_FLEET,
    "upstream_database": UPSTREAM_DATABASE,
    "fleet_wide": FLEET_WIDE,
    "same_host_different_problems": SAME_HOST_DIFFERENT_PROBLEMS,
    "recurrence_later": RECURRENCE_LATER,
}
