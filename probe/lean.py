"""Dataclasses whose `__repr__`, `__eq__` and `__hash__` are shared functions, not code generated
per class (issue #22: start-up).

`dataclasses.dataclass` writes each class's methods as source text and compiles it at import:
about 1.3 ms a class, 0.16 s for the ~110 records `once` imports, most of it for `__repr__`,
`__eq__` and `__hash__`, which a round hardly calls. Here they are one function each, reading
the class's fields; what they answer is what the generated ones answer: the repr lists the fields
with `repr=True`, two records are equal when they are of the same class and their compared fields
are equal as tuples, a frozen record hashes the tuple of its compared fields (those with
`hash=None` or `hash=True`), a mutable one is unhashable. `__init__` (and a frozen record's
`__setattr__`/`__delattr__`) stay the dataclass's own; `fields`, `asdict`, `replace` and
`__match_args__` work as on any dataclass.

What `dataclass` still generates (each `__init__`, a frozen record's `__setattr__` and
`__delattr__`, and every method of the dataclasses of other packages: h11's) is compiled once and
kept between processes, as Python keeps a module's bytecode: see `_exec_generated`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import marshal
import os
import reprlib
import sys
from collections.abc import Callable
from importlib._bootstrap_external import MAGIC_NUMBER, cache_from_source  # what importlib.util re-exports, without importing it (0.3 MiB)
from operator import attrgetter
from pathlib import Path
from types import CodeType
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")

_Getter = Callable[[object], tuple[Any, ...]]
_COMPARED: dict[type, _Getter] = {}
_HASHED: dict[type, _Getter] = {}
_SHOWN: dict[type, tuple[str, ...]] = {}


@overload
def lean_dataclass(cls: type[T], /) -> type[T]: ...
@overload
def lean_dataclass(*, frozen: bool = False, slots: bool = False, kw_only: bool = False) -> Callable[[type[T]], type[T]]: ...


@dataclass_transform(field_specifiers=(dataclasses.field, dataclasses.Field))
def lean_dataclass(cls: type[T] | None = None, /, *, frozen: bool = False, slots: bool = False, kw_only: bool = False) -> Any:
    """`@dataclass` with the same arguments (`frozen`, `slots`, `kw_only`), compared and shown by
    value as a dataclass is, without compiling `__repr__`, `__eq__` and `__hash__` per class."""

    def wrap(cls: type[T]) -> type[T]:
        made: type[T] = dataclasses.dataclass(cls, frozen=frozen, slots=slots, kw_only=kw_only, repr=False, eq=False)
        share_methods(made, frozen=frozen)
        return made

    return wrap if cls is None else wrap(cls)


def share_methods(cls: type, *, frozen: bool) -> None:
    """The shared `__repr__`, `__eq__` and `__hash__` on a dataclass made with `repr=False,
    eq=False` (which leaves its namespace as the body wrote it), where its body defines none, as
    `dataclass` keeps a class's own methods. A body's `__eq__` alone sets its `__hash__` to None:
    that is no hash of its own (dataclasses' rule)."""
    own = vars(cls)
    explicit_hash = "__hash__" in own and not (own["__hash__"] is None and "__eq__" in own)
    if "__repr__" not in own:
        cls.__repr__ = _repr  # type: ignore[assignment,method-assign]
    if "__eq__" not in own:
        cls.__eq__ = _eq  # type: ignore[assignment,method-assign]
    if not explicit_hash:
        cls.__hash__ = _hash if frozen else None  # type: ignore[assignment,method-assign]


def _compared(cls: type) -> _Getter:
    getter = _COMPARED.get(cls)
    if getter is None:
        getter = _COMPARED[cls] = _tuple_of(f.name for f in dataclasses.fields(cls) if f.compare)
    return getter


def _tuple_of(names: Any) -> _Getter:
    names = tuple(names)
    if len(names) == 1:  # attrgetter of one name gives the value, not a tuple of it
        one = attrgetter(names[0])
        return lambda record: (one(record),)
    return attrgetter(*names) if names else (lambda record: ())


def _eq(self: object, other: object) -> object:  # a bool, or NotImplemented
    if other.__class__ is not self.__class__:
        return NotImplemented
    compared = _compared(self.__class__)
    return compared(self) == compared(other)


def _hash(self: object) -> int:
    cls = self.__class__
    getter = _HASHED.get(cls)
    if getter is None:
        fields = dataclasses.fields(cls)  # type: ignore[arg-type]
        getter = _HASHED[cls] = _tuple_of(f.name for f in fields if (f.compare if f.hash is None else f.hash))
    return hash(getter(self))


@reprlib.recursive_repr()
def _repr(self: object) -> str:
    cls = self.__class__
    names = _SHOWN.get(cls)
    if names is None:
        names = _SHOWN[cls] = tuple(f.name for f in dataclasses.fields(cls) if f.repr)  # type: ignore[arg-type]
    shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in names)
    return f"{cls.__qualname__}({shown})"


# --- the code `dataclass` generates, compiled once and kept between processes ---------------------
#
# `dataclass` writes each method as source text and `exec`s it: compiling that text is most of a
# class's creation (0.08 s of `once`'s start-up, ~310 functions). The same text always compiles
# to the same code, so it is compiled once, kept in a file beside this module's bytecode (as
# `importlib` keeps a .pyc: not written when Python is told not to write bytecode, skipped when
# the directory is not writable) and read back by the next process. The text is the key (its
# BLAKE2 digest: start-up holds no copy of the texts), so a class that changes makes a new entry,
# never a stale one. What runs is the code `exec` would have run.

_KEPT: dict[bytes, CodeType] = {}  # from the file: the digest of a method's source text -> its code
_LEFT: dict[bytes, int] = {}  # from the file: how many classes of a process ran each (a few share one)
_COMPILED: dict[bytes, CodeType] = {}  # compiled by this process, for the file
_USES: dict[bytes, int] = {}  # the digests this process ran, and how often
_MAX_KEPT = 4000  # entries: beyond it the file is rewritten with this process's own


def _cache_file() -> Path | None:
    try:
        pyc = cache_from_source(__file__)
    except NotImplementedError:  # an implementation without bytecode caching
        return None
    return Path(pyc).with_name(Path(pyc).name.removesuffix(".pyc") + ".dataclass-code")


def _read_kept(path: Path | None) -> tuple[dict[bytes, CodeType], dict[bytes, int]]:
    """The file's codes and uses, or nothing."""
    if path is None:
        return {}, {}
    try:
        blob = path.read_bytes()  # whole: `marshal.load` of a file reads it a call per object
    except OSError:
        return {}, {}
    if not blob.startswith(MAGIC_NUMBER):
        return {}, {}
    try:
        kept = marshal.loads(memoryview(blob)[len(MAGIC_NUMBER):])
    except (EOFError, ValueError, TypeError):  # torn or foreign: compile afresh
        return {}, {}
    if not (isinstance(kept, tuple) and len(kept) == 2 and isinstance(kept[0], dict) and isinstance(kept[1], dict)):
        return {}, {}
    codes = {key: code for key, code in kept[0].items() if isinstance(key, bytes) and isinstance(code, CodeType)}
    return codes, {key: uses for key, uses in kept[1].items() if key in codes and isinstance(uses, int)}


def _exec_generated(source: str | CodeType, globals: dict[str, Any] | None = None, locals: dict[str, Any] | None = None) -> None:
    """`exec` for the `dataclasses` module: its source texts compiled once (`dont_inherit`: with
    the flags `exec` gives them, none of this module's `__future__` imports). A kept code is let
    go once run as often as the file says, as `exec` lets go of what it compiled: start-up holds
    no second copy."""
    if not isinstance(source, str):
        exec(source, globals, locals)
        return
    key = hashlib.blake2b(source.encode(), digest_size=16).digest()
    code = _KEPT.get(key)
    if code is not None:
        left = _LEFT.get(key, 1) - 1
        if left > 0:  # a text two classes share (a field `func` each): kept for the next
            _LEFT[key] = left
        else:
            del _KEPT[key]
            _LEFT.pop(key, None)
    else:
        code = _COMPILED.get(key)
        if code is None:
            code = compile(source, "<string>", "exec", dont_inherit=True)
            if key not in _USES:  # else the file has it: run more often here than it says
                _COMPILED[key] = code
    _USES[key] = _USES.get(key, 0) + 1
    exec(code, globals, locals)


def save_generated_code() -> None:
    """Keep what this process compiled for the next one (the file's entries read again beside
    it), then `dataclass` compiles as it always did: called when start-up ends (probe.cli).
    Written to a file of its own then renamed, so a process reading it at that moment reads the
    old file or the new one, whole."""
    path = _cache_file()
    if _COMPILED and path is not None and not sys.dont_write_bytecode:
        codes, uses = _read_kept(path)
        codes.update(_COMPILED)
        uses.update(_USES)
        if len(codes) > _MAX_KEPT:
            codes = {key: code for key, code in codes.items() if key in _USES}
        kept = (codes, {key: uses[key] for key in codes if key in uses})
        partial = path.with_name(f"{path.name}.{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(MAGIC_NUMBER + marshal.dumps(kept))
            os.replace(partial, path)
        except OSError:  # a read-only install: every process compiles, as before
            with contextlib.suppress(OSError):
                partial.unlink()
    _KEPT.clear()
    _LEFT.clear()
    _COMPILED.clear()
    _USES.clear()
    vars(dataclasses).pop("exec", None)


_KEPT, _LEFT = _read_kept(_cache_file())
dataclasses.exec = _exec_generated  # type: ignore[attr-defined]  # the module's `exec`, not the builtin
