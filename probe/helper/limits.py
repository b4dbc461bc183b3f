"""Per-client bounds: token buckets per source address (kept in memory only, never logged or
exported), and a cap on how many clients are tracked at once."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class _Bucket:
    tokens: float
    updated: float


class Buckets:
    """`allow(client, cost)`: take `cost` from the client's bucket (capacity `per_minute`, refilled
    continuously), or refuse. The least recently seen clients are forgotten past `max_clients`."""

    def __init__(self, per_minute: float, max_clients: int = 10_000):
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.max_clients = max_clients
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, client: str, cost: float = 1.0, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        bucket = self._buckets.pop(client, None) or _Bucket(self.capacity, now)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.updated) * self.rate)
        bucket.updated = now
        self._buckets[client] = bucket
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        if bucket.tokens < cost:
            return False
        bucket.tokens -= cost
        return True

    def __len__(self) -> int:
        return len(self._buckets)
