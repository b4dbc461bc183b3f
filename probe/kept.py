"""The latest result of each vantage, held packed between rounds (issue #22: `run`'s memory).

`run` keeps each vantage's latest round for what reads it later: the status page, `/status.json`,
a `/metrics` render in the other format, a confirmation round, the controls' reference. Held as
records, 1,000 targets are about 3.6 MiB of Python objects, still held while the next round
makes its own: `pack` turns each into its pickle, compressed (about 200 KiB), once the round is
published. A read unpacks it (the same records, equal field by field: the page and the JSON made
from them are the same bytes) and keeps the copy until `release`, so one page reads each vantage
once. The pickle is made and read only in this process: nothing from outside is ever unpickled.
"""

from __future__ import annotations

import copyreg
import pickle
import zlib
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import fields
from operator import attrgetter
from typing import Any

from probe.model import AfterTrigger, Certificate, Finding, ProbeRecord, VantageResult, Verdict
from probe.reasons import Reason

# Frozen records are pickled as their fields in a tuple, their constructor called on load:
# dataclasses' own `__getstate__` for frozen slotted classes is Python code per record (a third
# of a round's pickling: three ProbeRecords a target).
_FROZEN = (ProbeRecord, Certificate, Finding, AfterTrigger, Reason)


def _by_fields(cls: type) -> Callable[[Any], tuple[type, tuple[Any, ...]]]:
    names = [f.name for f in fields(cls)]
    get = attrgetter(*names)
    if len(names) == 1:
        return lambda record: (cls, (get(record),))
    return lambda record: (cls, get(record))


_DISPATCH: dict[type, Callable[[Any], Any]] = {**copyreg.dispatch_table, **{cls: _by_fields(cls) for cls in _FROZEN}}


_Packed = tuple[bytes, ...]  # a result's pickle, compressed, in the pieces zlib gave


class _Compressed:
    """A pickler's file: each frame compressed as it is written, never the whole pickle at once.
    The pieces are kept as they are (about 10 KiB each), never joined: no buffer of the packed
    size is grown or copied at the top of a round's publication, where packing sits."""

    def __init__(self) -> None:
        # Level 6 with a 4 KiB window and memLevel 5: about 40 KiB of zlib's state, not level 1's
        # 260 KiB, and 204 KiB packed, not 255, for 1,000 targets; about 20 ms more per round
        # (bench/kept_round.py, docs/benchmarks.md).
        self._compressor = zlib.compressobj(6, zlib.DEFLATED, 12, 5)
        self._pieces: list[bytes] = []

    def write(self, data: bytes) -> int:
        if piece := self._compressor.compress(data):
            self._pieces.append(piece)
        return len(data)

    def close(self) -> _Packed:
        self._pieces.append(self._compressor.flush())
        return tuple(self._pieces)


def _pack(result: VantageResult) -> _Packed:
    out = _Compressed()
    pickler = pickle.Pickler(out, pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _DISPATCH  # this pickler's only: nothing global changes
    # No memo: it would map each of a round's ~100,000 objects, 6 MiB for 1,000 targets, more than
    # the round itself. The records are a tree; what they share (a certificate met twice, equal
    # strings) comes back as equal copies.
    pickler.fast = True
    pickler.dump(result)
    return out.close()


class _Inflating:
    """The unpickler's file: the pieces decompressed as it reads them (a frame at a time), never
    the whole pickle at once."""

    def __init__(self, packed: _Packed) -> None:
        self._pieces = iter(packed)
        self._inflate: zlib._Decompress | None = zlib.decompressobj()
        self._buffer = bytearray()

    def _fill(self) -> bool:
        if self._inflate is None:
            return False
        piece = next(self._pieces, None)
        if piece is None:
            self._buffer += self._inflate.flush()
            self._inflate = None
        else:
            self._buffer += self._inflate.decompress(piece)
        return True

    def read(self, size: int = -1) -> bytes:
        while (size < 0 or len(self._buffer) < size) and self._fill():
            pass
        taken = bytes(self._buffer[:size] if size >= 0 else self._buffer)
        del self._buffer[: len(taken)]
        return taken

    def readline(self) -> bytes:
        while b"\n" not in self._buffer and self._fill():
            pass
        end = self._buffer.find(b"\n") + 1
        return self.read(end if end else -1)


def _unpack(packed: _Packed) -> VantageResult:
    result = pickle.load(_Inflating(packed))
    assert isinstance(result, VantageResult)
    return result


class KeptResults(MutableMapping[str, VantageResult]):
    """A dict of vantage name -> latest result (its order: insertion, as a dict's), whose results
    `pack` holds packed. A result set is held as it is until the next `pack`."""

    def __init__(self, results: Mapping[str, VantageResult] | None = None):
        self._entries: dict[str, VantageResult | _Packed] = {}
        self._unpacked: dict[str, VantageResult] = {}  # read since the last release
        # Each result's service verdicts, what the next round's new-block comparison reads: kept
        # apart, so that a round does not unpack the previous one for them.
        self._verdicts: dict[str, dict[str, Verdict]] = {}
        self.update(results or {})

    def __getitem__(self, name: str) -> VantageResult:
        entry = self._entries[name]
        if isinstance(entry, VantageResult):
            return entry
        found = self._unpacked.get(name)
        if found is None:
            found = self._unpacked[name] = _unpack(entry)
        return found

    def __setitem__(self, name: str, result: VantageResult) -> None:
        self._entries[name] = result
        self._verdicts[name] = {s.service: s.verdict for s in result.services}
        self._unpacked.pop(name, None)

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        del self._verdicts[name]
        self._unpacked.pop(name, None)

    def verdicts(self, name: str) -> dict[str, Verdict] | None:
        """The service verdicts of the vantage's latest result (None: no result yet)."""
        return self._verdicts.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def pack(self) -> None:
        """Every result held packed; the copies unpacked by reads let go."""
        for name, entry in self._entries.items():
            if isinstance(entry, VantageResult):
                self._entries[name] = _pack(entry)
        self._unpacked.clear()

    def packed_bytes(self) -> int:
        """Bytes of the results held packed (bench/kept_round.py)."""
        return sum(len(piece) for entry in self._entries.values() if isinstance(entry, tuple) for piece in entry)

    def release(self) -> None:
        """The copies unpacked by reads let go (a page or a scrape is answered)."""
        self._unpacked.clear()
