"""Running msgreach inside the lab's client namespace and reading what it says."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .lab import Lab, _kill
from .plan import NS_CLIENT


class Report:
    """The `once --format json` document, with lookups that fail with the JSON in the message."""

    def __init__(self, document: dict[str, Any], stderr: str = ""):
        self.doc = document
        self.stderr = stderr
        self.vantage = document["vantages"][0]

    def __repr__(self) -> str:
        return f"Report({self.summary()})"

    def summary(self) -> dict[str, Any]:
        """{service: (verdict, {target: (verdict, reason)})} for assertion messages."""
        return {
            "vantage": self.vantage["verdict"],
            **{
                s["service"]: (s["verdict"], {t["target"]: (t["verdict"], t.get("reason", "")) for t in s["targets"]})
                for s in self.vantage["services"]
            },
        }

    def service(self, name: str) -> dict[str, Any]:
        for service in self.vantage["services"]:
            if service["service"] == name:
                return service
        raise AssertionError(f"no service {name!r} in the report: {self.summary()}")

    def target(self, service: str, name: str) -> dict[str, Any]:
        for target in self.service(service)["targets"]:
            if target["target"] == name:
                return target
        raise AssertionError(f"no target {service}/{name} in the report: {self.summary()}")

    def controls(self) -> list[dict[str, Any]]:
        return self.vantage.get("controls", [])

    def all_targets(self) -> list[tuple[str, dict[str, Any]]]:
        return [(s["service"], t) for s in self.vantage["services"] for t in s["targets"]]

    @staticmethod
    def check(target: dict[str, Any], name: str) -> dict[str, Any]:
        for check in target["checks"]:
            if check["check"] == name:
                return check
        raise AssertionError(f"no {name} check in {target['target']}: {json.dumps(target, indent=1)[:3000]}")

    @staticmethod
    def failed_check(target: dict[str, Any]) -> dict[str, Any]:
        for check in target["checks"]:
            if not check["ok"]:
                return check
        raise AssertionError(f"no failed check in {target['target']}: {json.dumps(target, indent=1)[:3000]}")


def once(lab: Lab, *, services: list[str] | None = None, config: Path | None = None, timeout: float = 150) -> Report:
    argv = ["ip", "netns", "exec", NS_CLIENT, *lab.msgreach_argv(), "once", "--config", str(config or lab.config_path), "--format", "json"]
    for service in services or []:
        argv += ["--service", service]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode in (0, 3, 4), f"msgreach once exited {proc.returncode}:\n{proc.stderr[-3000:]}"
    try:
        document = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(f"msgreach once did not print JSON ({exc}):\n{proc.stdout[:2000]}\n{proc.stderr[-2000:]}") from None
    assert proc.returncode == _exit_status(document), f"exit {proc.returncode} for {[(v['verdict'], [s['verdict'] for s in v['services']]) for v in document['vantages']]}"
    return Report(document, proc.stderr)


def _exit_status(document: dict[str, Any]) -> int:
    """The contract's exit status of `once` for its document: 3 a block, 4 offline, 0 otherwise."""
    not_blocks = {"ok", "down", "error", "vantage_offline"}
    if any(s["verdict"] not in not_blocks for v in document["vantages"] for s in v["services"]):
        return 3
    return 4 if any(v["verdict"] == "vantage_offline" for v in document["vantages"]) else 0


# --- msgreach run and its /metrics ------------------------------------------------------------------

_SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def parse_metrics(text: str) -> list[Sample]:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match:
            labels = dict(_LABEL.findall(match.group("labels") or ""))
            samples.append(Sample(match.group("name"), labels, float(match.group("value"))))
    return samples


class Monitor:
    """`msgreach run` in the client namespace, with /metrics read from inside it too."""

    def __init__(self, lab: Lab, config: Path, port: int = 19910):
        self.lab, self.config, self.port = lab, config, port
        self.log = lab.dir / f"msgreach-run-{port}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Monitor:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", NS_CLIENT, *self.lab.msgreach_argv(), "--log-level", "INFO", "run",
                 "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        # recorded like the lab's daemons, so an interrupted test leaves nothing running
        self.lab.state["pids"][f"msgreach-run-{self.port}"] = self.proc.pid
        self.lab._save()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"msgreach run exited {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                self.metrics()
                return self
            except AssertionError:
                time.sleep(0.2)
        raise AssertionError(f"msgreach run did not serve /metrics within 20 s: {self.log.read_text()[-3000:]}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                _kill([self.proc.pid])
        self.lab.state["pids"].pop(f"msgreach-run-{self.port}", None)
        self.lab._save()

    def metrics(self) -> list[Sample]:
        proc = subprocess.run(
            ["ip", "netns", "exec", NS_CLIENT, "curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{self.port}/metrics"],
            capture_output=True, text=True, timeout=15,
        )
        assert proc.returncode == 0, f"GET /metrics failed: {proc.stderr}"
        return parse_metrics(proc.stdout)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def verdicts(samples: list[Sample], metric: str = "msgreach_target_verdict") -> dict[tuple[str, ...], str]:
    """{(service, target) or (service,): verdict} from a state-set metric."""
    out = {}
    for sample in samples:
        if sample.name == metric and sample.value == 1:
            key = (sample.labels["service"], sample.labels["target"]) if "target" in sample.labels else (sample.labels["service"],)
            out[key] = sample.labels["verdict"]
    return out


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


# --- observed verdicts, for docs/lab.md -------------------------------------------------------------


def record(scenario: str, selector: str, expected: str, report: Report | None, observed: str, note: str = "") -> None:
    """Append one observation to $MRL_LAB_OBSERVED (a JSON-lines file), when set."""
    path = os.environ.get("MRL_LAB_OBSERVED")
    if not path:
        return
    with open(path, "a") as out:
        out.write(json.dumps({"scenario": scenario, "targets": selector, "expected": expected, "observed": observed, "note": note}) + "\n")
