"""The evidence archive: one JSON line per target per round, size-rotated, crash-safe, bounded.

Gauges say *that* something changed; a report needs *what was seen*. After every round the
monitor (and `msgreach once`) appends one JSON object per target — controls included — to a
JSON-lines file: the resolvers' answers, the addresses tried, failure strings, certificate
facts, HTTP status and redirect chain, throughput, the verdict and why. Keys follow OONI's
measurement vocabulary where one exists, so lines can be set beside OONI's public data; the
mapping is documented in docs/deploy.md ("Evidence archive").

- `records`: a round's results as archive records (OONI's archival shapes, scrubbed);
- `archive`: the files (append, rotation, locks, fsync) and reading them back;
- `command`: `msgreach evidence`, the verdict changes of a period.
"""

from probe.evidence.archive import Archive, Reading, archive_files, encode, read
from probe.evidence.command import BadTimeArgument, changes, parse_time, print_changes, render_table
from probe.evidence.records import CONTROLS, SCHEMA, record, records
from probe.redact import SCRUBBED, scrub

__all__ = [
    "CONTROLS",
    "SCHEMA",
    "SCRUBBED",
    "Archive",
    "BadTimeArgument",
    "Reading",
    "archive_files",
    "changes",
    "encode",
    "parse_time",
    "print_changes",
    "read",
    "record",
    "records",
    "render_table",
    "scrub",
]
