"""The archive's record versions: the `schema` every line carries, and what a reader does with one.

A record names its version as `msgreach-evidence/<N>`. This msgreach writes `CURRENT` and reads
every version from `OLDEST_READABLE` up to it: an older record is read as it was written (fields
added since are absent, and readers such as the OONI export derive or leave out what it lacks),
after the upgrades registered for its version, if any, have brought renamed or reshaped fields
up to date. A record of a newer version, of a version too old, or with no msgreach schema at all
is refused, and the reader says why (`Reading.refused`), so that `msgreach evidence` can tell
the user instead of quietly showing less.

When a change to the records (probe/evidence/records.py) changes what a reader can rely on,
bump `CURRENT`, say what changed in `HISTORY` (and in docs/deploy.md, "Line format"), and
register an upgrade when an older record can be brought forward.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

PREFIX = "msgreach-evidence/"
CURRENT = 3
OLDEST_READABLE = 1
SCHEMA = f"{PREFIX}{CURRENT}"

HISTORY: Mapping[int, str] = {
    1: "OONI-vocabulary lines; t0/t reconstructed from the checks' durations; no transaction_id, no failed_operation",
    2: (
        "each operation's own t0/t, transaction_id and failed_operation, and a failed check's failed_operation, as recorded "
        "where the operation happened; what the judge read, for --rejudge: observations, round_facts (control_class for a "
        "control), compared, reasons (key and parameters). A version-1 record is read as it is (no upgrade: what it lacks, "
        "the OONI export derives and says so)"
    ),
    3: (
        "issue 20. Blocks that linger: `probes`, the round's probe log for the destinations the target probed (each "
        "check's probes to each address or helper, kind measurement or trigger, attempt, start/end in seconds since the "
        "round began, failure); `after_trigger` (destination, trigger, seconds, cooldown) on a failure that followed our own "
        "trigger probe within its cooldown, which the judge reads (`error`); `held_from` on a trigger target not sent "
        "that round (its last result, measured in the round of that unix time); `round_facts.ipv6` (a control reached IPv6: each "
        "family of the target judged apart, a family every address of which fails is `ip_blocked`). Freezes counted in packets: "
        "packets each way (PacketCounts from TCP_INFO) on every download and bulk transfer; the throughput check's repeats (again, "
        "decoy_again), its uploads (upload, upload_again: Upload records), control_freezes, floor_bytes_per_second and skipped; bulk "
        "uploads (kinds *_upload with sent/acked/answered bytes) and upload_bytes. The tls check's ClientHello "
        "matrix: a TLS handshake says which hello it sent (hello, split, pq, and ja4 in tls_handshakes); the tls evidence keeps "
        "the target's client, the matrix and the alternated repeats. A version-2 record is read as it is: it has none of them "
        "and none applied (its one slow transfer stands and no key is named; a decoy that passed reads as it did then)"
    ),
}

Record = dict[str, Any]
Upgrade = Callable[[Record], Record]

_VERSION = re.compile(re.escape(PREFIX) + r"([1-9][0-9]{0,5})$")


def version_of(record: Record) -> int | None:
    """The record's schema version, or None when it names no msgreach schema."""
    schema = record.get("schema")
    match = _VERSION.match(schema) if isinstance(schema, str) else None
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Schemas:
    """Which versions a reader takes: `oldest`…`current`, older ones brought forward by `upgrades`
    (version N -> a function returning the record as version N+1 would have it)."""

    current: int = CURRENT
    oldest: int = OLDEST_READABLE
    upgrades: Mapping[int, Upgrade] = field(default_factory=dict)

    def admit(self, record: Record) -> tuple[Record | None, str | None]:
        """The record to read (upgraded where an upgrade is registered), or None and why not."""
        version = version_of(record)
        if version is None:
            named = record.get("schema")
            what = "no `schema`" if named is None else f"`schema` {str(named)[:40]!r}"
            return None, f"not a msgreach evidence record ({what})"
        if version > self.current:
            return None, f"schema {PREFIX}{version} was written by a newer msgreach (this one reads {self._range()}): read it with that version"
        if version < self.oldest:
            return None, f"schema {PREFIX}{version} is older than this msgreach reads ({self._range()}): read it with an older msgreach"
        while version < self.current:
            upgrade = self.upgrades.get(version)
            if upgrade is not None:
                record = upgrade(record)
            version += 1
        return record, None

    def _range(self) -> str:
        return f"{PREFIX}{self.current}" if self.oldest == self.current else f"{PREFIX}{self.oldest} to {PREFIX}{self.current}"


READER = Schemas()
