"""Control measurements: the helper measures targets of its own catalogs, by name only.

A monitor names (service, target) pairs; a pair that is not in the helper's catalogs is answered
`unknown_target` and never measured, so the helper cannot be used as a proxy or a scanner. The
helper runs msgreach's own runner on a config restricted to the named targets (its controls
included, so an offline helper says so), one measurement at a time, and keeps each target's
result for `cache_seconds`: a hundred monitors asking within one round cost one measurement.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from probe.config import Config, Service

MAX_NAMES = 256


class Measurer:
    def __init__(self, config: Config, cache_seconds: float, on_measured: Any = None):
        self.config = config
        self.cache_seconds = cache_seconds
        self._catalog = {(s.name, t.name): (s, t) for s in config.services for t in s.targets}
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self._lock = asyncio.Lock()
        self._on_measured = on_measured or (lambda count: None)

    def knows(self, service: str, target: str) -> bool:
        return (service, target) in self._catalog

    async def answer(self, names: list[tuple[str, str]], max_age: float | None = None) -> list[dict[str, Any]]:
        """`max_age`: a result this old still answers (a monitor's next page of one measurement);
        by default `cache_seconds`."""
        age = self.cache_seconds if max_age is None else max(max_age, self.cache_seconds)
        wanted = [n for n in dict.fromkeys(names) if n in self._catalog]
        missing = [n for n in wanted if not self._fresh(n, age)]
        if missing:
            async with self._lock:  # one measurement at a time; those who waited read its results
                missing = [n for n in missing if not self._fresh(n, age)]
                if missing:
                    await self._measure(missing)
        answers: list[dict[str, Any]] = []
        for service_name, target_name in names:
            if (service_name, target_name) not in self._catalog:
                answers.append({"service": service_name, "target": target_name, "error": "unknown_target"})
            else:
                measured_at, result = self._cache[(service_name, target_name)]
                answers.append({"service": service_name, "age_seconds": round(time.monotonic() - measured_at, 3), **result})
        return answers

    def _fresh(self, name: tuple[str, str], age: float) -> bool:
        cached = self._cache.get(name)
        return cached is not None and time.monotonic() - cached[0] <= age

    async def _measure(self, names: list[tuple[str, str]]) -> None:
        from probe.runner import run_round  # late: the runner pulls in every check

        by_service: dict[str, list[str]] = {}
        for service_name, target_name in names:
            by_service.setdefault(service_name, []).append(target_name)
        services: list[Service] = []
        for service in self.config.services:
            if service.name in by_service:
                chosen = [t for t in service.targets if t.name in by_service[service.name]]
                services.append(service.model_copy(update={"targets": chosen}))
        subset = replace(self.config, services=services)
        result = await run_round(subset, subset.vantages[0])
        now = time.monotonic()
        vantage_verdict = str(result.verdict)
        for service_result in result.services:
            for target in service_result.targets:
                data = target.as_json()
                data["helper_vantage"] = vantage_verdict
                self._cache[(service_result.service, target.target)] = (now, data)
        self._on_measured(len(names))
