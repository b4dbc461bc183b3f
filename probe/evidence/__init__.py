"""The evidence archive: one JSON line per target per round, size-rotated, crash-safe, bounded.

Gauges say *that* something changed; a report needs *what was seen*. After every round the
monitor (and `msgreach once`) appends one JSON object per target — controls included — to a
JSON-lines file: the resolvers' answers, the addresses tried, failure strings, certificate
facts, HTTP status and redirect chain, throughput, the verdict and why. Keys follow OONI's
measurement vocabulary where one exists, so lines can be set beside OONI's public data, and
`msgreach evidence --format ooni` turns them into OONI measurements proper; both are documented
in docs/deploy.md ("Evidence archive").

- `records`: a round's results as archive records (OONI's archival shapes, scrubbed);
- `schema`: the records' versions, and which of them a reader takes;
- `archive`: writing the files (append, rotation, locks, fsync; regular files only);
- `reader`: reading them back, safe against rotation, damage, overlong lines and odd files;
- `stored`: a record as typed values (the one reader of its keys); `ooni`: `--format ooni`;
- `command`: `msgreach evidence`, the verdict changes of a period.
"""

from probe.evidence.archive import Archive, encode
from probe.evidence.command import BadTimeArgument, changes, parse_time, print_changes, render_table
from probe.evidence.reader import MAX_LINE_BYTES, Reading, archive_files, read
from probe.evidence.records import CONTROLS, record, records
from probe.evidence.schema import SCHEMA
from probe.redact import SCRUBBED, scrub

__all__ = [
    "CONTROLS",
    "MAX_LINE_BYTES",
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
