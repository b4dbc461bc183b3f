"""The archive's files: appending lines durably, rotating by size (reading them back: `reader`).

Durability
- Each line is written with one `os.write` on an `O_APPEND` descriptor, so the kernel places it
  after everything written before, whoever else appends. A process killed mid-write (even
  `kill -9`) can leave at most one torn line at the end of the file; every earlier line is
  untouched. The next writer ends such a torn fragment with a newline before appending, and
  readers skip lines that do not parse (and count them).
- fsync policy: the file is fsynced once per round, after that round's lines (one fsync per
  vantage per interval); the directory is fsynced after a rotation. A crash of the process loses
  nothing already written; a power loss loses at most the round being written.
- Writers (e.g. `msgreach run` and a `msgreach once` at the same time) serialise on an advisory
  `flock` of the archive's directory, so rotation never races an append.

Disk use
- When the next line would make the file exceed `max_bytes`, the file is rotated: `F` -> `F.1`
  -> `F.2` ... and the oldest beyond `keep_files` files in all (the live one included) is
  deleted. No file ever exceeds `max_bytes`; a line that alone would (a huge body sample), or
  that would exceed the reader's `MAX_LINE_BYTES`, is shrunk first. Disk use is at most
  `keep_files * max_bytes`.

The path
- The archive is written only to a regular file: a symbolic link at `evidence.path` (it would
  send the lines wherever it points), a FIFO, a device or a directory is refused, at load
  (`probe.config`, so check-config, run and once name the file and the key) and again at every
  open (`O_NOFOLLOW`, then `fstat`), which is when a swap after the load would show.

Reading the files back is `probe.evidence.reader`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from probe.config import Evidence, Vantage
from probe.config.files import not_a_regular_file
from probe.evidence.reader import MAX_LINE_BYTES
from probe.evidence.records import Unscrubbed, unscrubbed_records
from probe.model import VantageResult
from probe.redact import addresses_in, any_secret, normal_forms

log = logging.getLogger(__name__)

# Never follow a link; never block opening a FIFO or a device (refused once open); no tty.
_WRITE_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
_MAX_REASON = 300  # characters of the reason kept in a line shrunk to fit max_bytes
_STUB_KEYS = ("schema", "time", "vantage", "service", "target", "input", "verdict", "reason", "service_verdict", "vantage_verdict", "truncated")


# --- writing -----------------------------------------------------------------------------------


class Archive:
    """Appends rounds to the JSON-lines file named by `evidence.path`, rotating by size.

    Never raises from `append`: a full or read-only disk must not stop the measurements; the
    problem is logged (once per kind of error until it clears) and `failing` says so until an
    append succeeds again (the monitor exports it as a metric)."""

    def __init__(self, evidence: Evidence, vantages: Iterable[Vantage] = ()):
        if evidence.path is None:
            raise ValueError("the evidence archive needs a path")
        self.path = Path(evidence.path)
        self.max_bytes = evidence.max_bytes
        self.max_line_bytes = min(evidence.max_bytes, MAX_LINE_BYTES)
        self.keep_files = evidence.keep_files
        self.vantages = {v.name: v for v in vantages}
        self.last_success: float | None = None  # unix time of the latest append that was written
        self._lock = threading.Lock()
        self._last_error: str | None = None
        self._cleaned = False

    @property
    def failing(self) -> bool:
        """The latest append could not be written."""
        return self._last_error is not None

    def append(self, result: VantageResult) -> int:
        """Append one line per target of the round; return how many lines were written. Each line
        is encoded when it is written: a round's lines (a few KiB a target) are never all held at
        once, which was the peak of a `run` process's memory at 1,000 targets (issue #22)."""
        lines = (self._fit(line) for line in encoded_records(result, self.vantages.get(result.vantage)))
        try:
            with self._lock, self._directory_lock():
                written = self._append_locked(lines)
        except OSError as exc:
            message = f"{type(exc).__name__}: {exc.strerror or exc}"
            if message != self._last_error:
                log.error("evidence archive %s: cannot write (%s); measurements go on without it", self.path, message)
                self._last_error = message
            return 0
        if self._last_error is not None:
            log.warning("evidence archive %s: writing again", self.path)
            self._last_error = None
        self.last_success = time.time()
        return written

    # The directory lock: one writer at a time across processes (rotation renames files).
    @contextmanager
    def _directory_lock(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _append_locked(self, lines: Iterable[bytes]) -> int:
        if not self._cleaned:
            self._remove_beyond_bound()
            self._cleaned = True
        fd = self._open()
        written = 0
        try:
            size = os.fstat(fd).st_size
            for line in lines:
                if size > 0 and size + len(line) > self.max_bytes:
                    os.close(fd)
                    fd = -1
                    self._rotate()
                    fd = self._open()
                    size = os.fstat(fd).st_size
                _write_line(fd, line)
                size += len(line)
                written += 1
            os.fsync(fd)
        finally:
            if fd >= 0:
                os.close(fd)
        return written

    def _open(self) -> int:
        try:
            fd = os.open(self.path, _WRITE_FLAGS, 0o640)
        except OSError as exc:
            why = not_a_regular_file(self.path)  # O_NOFOLLOW's ELOOP says less than this
            if why is None:
                raise
            raise OSError(exc.errno, why) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(0, not_a_regular_file(self.path) or f"{self.path} is not a regular file")
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A writer died mid-line: end the fragment so the next line starts clean.
                _write_line(fd, b"\n")
        except BaseException:
            os.close(fd)
            raise
        return fd

    def rotated(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.name}.{index}")

    def _rotate(self) -> None:
        keep_rotated = self.keep_files - 1
        if keep_rotated == 0:
            self.path.unlink(missing_ok=True)
        else:
            self.rotated(keep_rotated).unlink(missing_ok=True)
            for index in range(keep_rotated - 1, 0, -1):
                if self.rotated(index).exists():
                    os.replace(self.rotated(index), self.rotated(index + 1))
            os.replace(self.path, self.rotated(1))
        _fsync_directory(self.path.parent)

    def _remove_beyond_bound(self) -> None:
        """Rotated files a larger `keep_files` left behind count against the bound: delete them."""
        pattern = re.compile(re.escape(self.path.name) + r"\.(\d+)$")
        for entry in self.path.parent.iterdir():
            match = pattern.match(entry.name)
            if match and int(match.group(1)) >= self.keep_files:
                entry.unlink(missing_ok=True)

    def _fit(self, line: bytes) -> bytes:
        """A line never exceeds max_bytes (nor the reader's cap): drop bulky evidence first, then
        all but the verdict."""
        if len(line) <= self.max_line_bytes:
            return line
        record = json.loads(line)
        record["truncated"] = True
        for request in record.get("test_keys", {}).get("requests", []):
            if isinstance(request.get("response"), dict):
                request["response"]["body"] = None
        line = encode(record)
        if len(line) <= self.max_line_bytes:
            return line
        stub = {key: record[key] for key in _STUB_KEYS if key in record}
        stub["reason"] = str(stub.get("reason", ""))[:_MAX_REASON]
        return encode(stub)


def _write_line(fd: int, data: bytes) -> None:
    """One write() for the whole line; only a short write (disk full, signal) loops."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def encoded_records(result: VantageResult, vantage: Vantage | None = None) -> Iterator[bytes]:
    """The round's archive lines, `encode(record)` of each of `records`, byte for byte, without
    walking every record to scrub it (the archive's largest cost, issue #22). A record is encoded
    as it was built, and each string of its line is asked for the addresses the scrub would judge
    (`probe.redact.addresses_in`, once per distinct string of the round, within a bound); only a
    line where one of them is secret (the scrub would replace it), or that escapes a character
    (its strings are then not read off the line as they are), is encoded again from the scrubbed
    record. Keys are read too, which can only send more lines the old way."""
    strings = _Strings()
    for unscrubbed in unscrubbed_records(result, vantage):
        text = _text(unscrubbed.data)
        if "\\" in text or _holds_secret(text, unscrubbed, strings):
            text = _text(unscrubbed.scrubbed())
        yield text.encode("utf-8")
        strings.age()


class _Strings:
    """What `addresses_in` said of the round's strings, bounded: two generations, the older
    forgotten when the newer fills and takes its place, so a string every line has (a key, the
    round's time, a shared address) is carried over, not asked again, while the few each target
    alone has are forgotten."""

    def __init__(self) -> None:
        self.plain: set[str] = set()  # strings with no address
        self.texts: dict[str, tuple[tuple[str, bool], ...]] = {}  # and those with addresses, which
        self._older_plain: set[str] = set()
        self._older_texts: dict[str, tuple[tuple[str, bool], ...]] = {}

    def addresses(self, string: str) -> tuple[tuple[str, bool], ...]:
        """`addresses_in(string)`, remembered (the caller has looked in `texts` and `plain`)."""
        if string in self._older_plain:
            self.plain.add(string)
            return ()
        known = self._older_texts.get(string)
        if known is None:
            known = addresses_in(string)
        if known:
            self.texts[string] = known
        else:
            self.plain.add(string)
        return known

    def age(self) -> None:
        if len(self.plain) + len(self.texts) > _MAX_STRINGS // 2:
            self._older_plain, self._older_texts = self.plain, self.texts
            self.plain, self.texts = set(), {}


def _holds_secret(text: str, unscrubbed: Unscrubbed, strings: _Strings) -> bool:
    """Whether the scrub would change a string of `text`, a record's JSON without escapes (every
    `"` in it opens or closes a string, whose characters are the string's own: the strings are
    every other piece between quotes)."""
    found: set[tuple[str, bool]] = set()
    measured = _measured_ipv4(unscrubbed)
    for string in set(text.split('"')[1::2]) - strings.plain:
        known = strings.texts.get(string)
        if known is None:
            if _is_measured(string, measured):
                continue  # a target's own address: every target has its own, so none repeats
            known = strings.addresses(string)
        found.update(known)
    return bool(found) and any_secret(found, allowed=unscrubbed.allowed, deny=unscrubbed.deny)


def _measured_ipv4(unscrubbed: Unscrubbed) -> set[str]:
    """The dotted IPv4 addresses the record's measurement resolved or connected to, not denied."""
    return {address for address in unscrubbed.allowed if ":" not in address} - normal_forms(unscrubbed.deny)


def _is_measured(string: str, measured: set[str]) -> bool:
    """Whether the string is one of `measured`, alone or as `address:port`: the only address the
    scrub's patterns find in it is then that one (a dotted IPv4 has no `-`, `_` or two colons),
    which it keeps, so `addresses_in` need not parse it."""
    if string in measured:
        return True
    address, colon, port = string.rpartition(":")
    return bool(colon) and port.isascii() and port.isdigit() and address in measured


_MAX_STRINGS = 1024  # distinct strings remembered, both generations (then forgotten): the repeated ones are a few hundred, and a round holds ~5 more per target


def encode(record: dict[str, Any]) -> bytes:
    return _text(record).encode("utf-8")


def _text(record: dict[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
