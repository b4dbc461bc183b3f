"""Reading the archive back: every file, oldest first, as untrusted ground.

- Rotation. A writer may rotate (`F` -> `F.1` …, the oldest deleted) at any moment. The reader
  lists the files, opens each, then checks that the listing and every name's inode are what it
  opened; if a rotation slipped in between, it closes everything and tries again (a few times,
  then it reads what it holds). An open descriptor keeps its file readable whatever is renamed
  or deleted afterwards, so a reading is one contiguous run of lines: nothing lost or repeated
  across a rotation, and a file that vanished is never an error. The reader takes no lock: it
  never delays the monitor's appends, and a stuck writer never stalls a report.
- Files. Only regular files are read: a symbolic link, a FIFO, a device, a socket or a directory
  under an archive file's name is refused (listed in `Reading.refused_files`) without being
  opened for reading, so a FIFO cannot hang a reader and /dev/zero cannot feed it forever.
- Lines. A line longer than `MAX_LINE_BYTES` is skipped unparsed and counted (the writer never
  writes one); a line that does not parse as a record is skipped and counted; a record of a
  schema this msgreach does not read is refused, counted by reason (`probe.evidence.schema`).
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from probe.config.files import file_kind
from probe.evidence.schema import READER, Schemas

MAX_LINE_BYTES = 1024 * 1024  # newline included; a round's line is a few KB, a huge one ~100 KB
_SNAPSHOT_TRIES = 20
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY


@dataclass
class Reading:
    records: list[dict[str, Any]] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    skipped: int = 0  # lines that did not parse: a torn last line after a crash, or damage
    oversized: int = 0  # lines longer than MAX_LINE_BYTES, skipped unread
    refused: dict[str, int] = field(default_factory=dict)  # records of a schema not read here, by reason
    refused_files: list[str] = field(default_factory=list)  # "<path>: <why>" for files not read at all

    def notes(self) -> list[str]:
        """One line for each thing not read and why, for the user (none when all was read)."""
        notes = list(self.refused_files)
        notes += [f"{count} record(s) refused: {reason}" for reason, count in sorted(self.refused.items())]
        if self.oversized:
            notes.append(f"{self.oversized} line(s) longer than {MAX_LINE_BYTES} bytes skipped unread")
        return notes


def archive_files(path: Path) -> list[Path]:
    """The archive's files, oldest first: F.N … F.1, F (whatever kind of file each name is)."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)$")
    rotated = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:  # no directory (yet), or not one
        entries = []
    for entry in entries:
        match = pattern.match(entry.name)
        if match:
            rotated.append((int(match.group(1)), entry))
    files = [entry for _, entry in sorted(rotated, reverse=True)]
    if os.path.lexists(path):
        files.append(path)
    return files


def read(path: str | Path, schemas: Schemas = READER) -> Reading:
    """Every readable record of the archive, oldest file first; whatever is not read is counted.

    Nothing in the directory (damage, a torn line, a foreign file under the archive's name, a
    file rotated away mid-read, a FIFO) makes this an error."""
    reading = Reading()
    opened = _open_consistently(Path(path), reading)
    try:
        for file, handle in opened:
            reading.files.append(file)
            _read_lines(handle, reading, schemas)
    finally:
        for _, handle in opened:
            handle.close()
    return reading


# --- one consistent set of open files -----------------------------------------------------------


@dataclass
class _Opened:
    files: list[tuple[Path, BinaryIO]] = field(default_factory=list)
    identities: list[tuple[int, int]] = field(default_factory=list)  # (st_dev, st_ino) of each
    refused: list[str] = field(default_factory=list)
    vanished: bool = False

    def close(self) -> None:
        for _, handle in self.files:
            handle.close()


def _open_consistently(path: Path, reading: Reading) -> list[tuple[Path, BinaryIO]]:
    attempt = _Opened()
    for _ in range(_SNAPSHOT_TRIES):
        names = archive_files(path)
        attempt = _open_all(names)
        if not attempt.vanished and archive_files(path) == names and _same_files(attempt):
            break
        attempt.close()
    else:
        attempt = _open_all(archive_files(path))  # rotating all along: read what is there now
    reading.refused_files.extend(attempt.refused)
    return attempt.files


def _open_all(names: list[Path]) -> _Opened:
    opened = _Opened()
    for name in names:
        try:
            kind = os.lstat(name).st_mode
            if not stat.S_ISREG(kind):
                opened.refused.append(f"{name}: {file_kind(kind)}, not a regular file: not read")
                continue
            fd = os.open(name, _OPEN_FLAGS)
        except FileNotFoundError:
            opened.vanished = True  # rotated away since the listing
            continue
        except OSError as exc:
            opened.refused.append(f"{name}: {exc.strerror or exc}: not read")
            continue
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped for something else since the lstat
            os.close(fd)
            opened.refused.append(f"{name}: {file_kind(info.st_mode)}, not a regular file: not read")
            continue
        opened.files.append((name, os.fdopen(fd, "rb", buffering=65536)))
        opened.identities.append((info.st_dev, info.st_ino))
    return opened


def _same_files(opened: _Opened) -> bool:
    """Each name still leads to the file opened under it: no rotation since the listing."""
    for (name, _), identity in zip(opened.files, opened.identities, strict=True):
        try:
            info = os.lstat(name)
        except FileNotFoundError:
            return False
        if (info.st_dev, info.st_ino) != identity:
            return False
    return True


# --- lines ----------------------------------------------------------------------------------------


def _read_lines(handle: BinaryIO, reading: Reading, schemas: Schemas) -> None:
    while raw := handle.readline(MAX_LINE_BYTES):
        if len(raw) == MAX_LINE_BYTES and not raw.endswith(b"\n"):
            if _skip_rest_of_line(handle):
                reading.oversized += 1
            else:
                reading.skipped += 1  # a torn last line of exactly the cap's length
            continue
        if not raw.strip():
            continue
        item = _parse(raw)
        if item is None:
            reading.skipped += 1
            continue
        admitted, refusal = schemas.admit(item)
        if admitted is None:
            reason = str(refusal)
            reading.refused[reason] = reading.refused.get(reason, 0) + 1
        else:
            reading.records.append(admitted)


def _skip_rest_of_line(handle: BinaryIO) -> bool:
    """Read past the rest of an overlong line; False when nothing followed (the file ended)."""
    more = False
    while chunk := handle.readline(65536):
        more = True
        if chunk.endswith(b"\n"):
            break
    return more


def _parse(raw: bytes) -> dict[str, Any] | None:
    """A record is a JSON object with a string `time` and `target`; anything else is damage."""
    try:
        item = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: `[[[[…` thousands deep
        return None
    if isinstance(item, dict) and isinstance(item.get("time"), str) and isinstance(item.get("target"), str):
        return item
    return None
