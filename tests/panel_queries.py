"""Running every Grafana panel query of dashboards/ against a real Prometheus (shared by
tests/test_dashboard_queries.py and the lab end-to-end test)."""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from promstack import Prometheus, PromQLError

QUERIES = Path(__file__).resolve().parent.parent / "dashboards" / "queries.yaml"


def queries() -> list[dict]:
    """Every query of the committed dashboards with its needs (dashboards/queries.yaml, written by
    the generator; tests/test_dashboards.py checks it matches the dashboards' JSON)."""
    return yaml.safe_load(QUERIES.read_text())


def substitute(expr: str, selection: dict[str, str]) -> str:
    """Grafana's variable expansion: ``selection`` holds what Grafana would put for each variable
    (a value, or for "All" the allValue / the (a|b) list)."""
    for name, value in selection.items():
        expr = expr.replace(f"${name}", value)
    return expr.replace("$__rate_interval", "10s")


def problems(prom: Prometheus, selection: dict[str, str], provides: set[str], dashboard: str | None = None) -> tuple[int, list[str]]:
    """(queries run, problems): a query Prometheus refuses, or an empty result for a query whose
    needs (dashboards.generate NEEDS) the setup ``provides``."""
    found, checked = [], 0
    for q in queries():
        if dashboard is not None and q["dashboard"] != dashboard:
            continue
        expr = substitute(q["expr"], selection)
        where = f"[{q['dashboard']} / {q['panel']} / {q['ref_id']}]"
        checked += 1
        now = time.time()
        try:
            result = prom.query(expr, at=now) if q["instant"] else prom.query_range(expr, now - 60, now, 2)
        except PromQLError as e:
            found.append(f"{where} {e}")
            continue
        if set(q["needs"]) <= provides and not result:
            found.append(f"{where} returned nothing, but the setup guarantees data ({q['needs']}):\n  {expr}")
    return checked, found
