"""A check's typed evidence as archive JSON and back, for the judge to read it again
(`msgreach evidence --rejudge`).

`dump` writes a record of probe.model field by field (its own fields, not its `as_json` form,
which flattens some), leaving out what no analyser reads (fields marked `for_people`: bodies,
certificates, fingerprints; those are kept once, in the line's OONI lists), what the judge
wrote (fields marked `judged`: reading the observations again writes them anew) and what is
unset;
`load` rebuilds the record from its type's annotations. The record's class name travels with it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from functools import cache
from typing import Any, Union

from probe import model

JSON = Any  # what json.loads gives: the archive is read as untrusted input


class Unreadable(ValueError):
    """Stored observations that do not make the record they name."""


def dump(evidence: object) -> dict[str, JSON] | None:
    """{"record": class name, "fields": …} for a probe.model record; None for anything else (a
    check's evidence is always one: `--rejudge` says a line without it cannot be read again)."""
    if not _is_record(type(evidence)):
        return None
    return {"record": type(evidence).__name__, "fields": _fields(evidence)}


def load(data: JSON) -> object:
    """The record `dump` wrote. Raises Unreadable for anything else."""
    if not isinstance(data, dict) or not isinstance(data.get("record"), str):
        raise Unreadable("no record name")
    cls = _records().get(data["record"])
    if cls is None:
        raise Unreadable(f"unknown record {data['record']!r}")
    return _build(cls, data.get("fields"))


def _is_record(cls: type) -> bool:
    known = _is_record_class.get(cls)
    if known is None:  # once per class: every value of every record asks
        known = _is_record_class[cls] = dataclasses.is_dataclass(cls) and cls.__module__ == model.__name__
    return known


_is_record_class: dict[type, bool] = {}


@cache
def _records() -> dict[str, type]:
    return {name: value for name, value in vars(model).items() if isinstance(value, type) and _is_record(value)}


def _fields(record: object) -> dict[str, JSON]:
    data: dict[str, JSON] = {}
    for name in _kept(type(record)):
        value = getattr(record, name)
        if value is None:
            continue
        kind = type(value)  # most fields are plain: kept as they are, without a call (issue #22)
        data[name] = value if kind is str or kind is int or kind is float or kind is bool else _value(value)
    return data


def _kept(cls: type) -> tuple[str, ...]:
    """A record class's fields the archive keeps, in order (read once: every record of every
    round asks, and `dataclasses.fields()` builds its answer at each call)."""
    kept = _kept_fields.get(cls)
    if kept is None:
        kept = _kept_fields[cls] = tuple(f.name for f in dataclasses.fields(cls) if not (f.metadata.get("for_people") or f.metadata.get("judged")))
    return kept


_kept_fields: dict[type, tuple[str, ...]] = {}


def _value(value: object) -> JSON:
    kind = type(value)
    if kind is str or kind is int or kind is float or kind is bool:
        return value
    if _is_record(kind):
        return _fields(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, list | tuple):
        return [_value(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _value(v) for k, v in value.items()}
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _build(cls: type, data: JSON) -> object:
    if not isinstance(data, dict):
        raise Unreadable(f"{cls.__name__}: not an object")
    hints = _hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            values[f.name] = _convert(hints[f.name], data[f.name], f"{cls.__name__}.{f.name}")
    try:
        return cls(**values)
    except TypeError as exc:  # a required field missing
        raise Unreadable(f"{cls.__name__}: {exc}") from None


def _convert(hint: Any, value: JSON, where: str) -> object:
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [o for o in typing.get_args(hint) if o is not type(None)]
        if value is None:
            return None
        records = [o for o in options if _is_record(o)]
        if records and isinstance(value, dict):
            # The first record whose required fields are all there (TLSHandshake has `sni`,
            # HTTPProbe `host`): the fields tell them apart.
            for option in records:
                required = {f.name for f in dataclasses.fields(option) if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
                if required <= value.keys():
                    return _build(option, value)
            raise Unreadable(f"{where}: none of {[o.__name__ for o in records]}")
        return _convert(options[0], value, where) if len(options) == 1 else _scalar(options, value, where)
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise Unreadable(f"{where}: not a list")
        return [_convert(item, v, where) for v in value]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, dict):
            raise Unreadable(f"{where}: not an object")
        return {str(k): _convert(item, v, where) for k, v in value.items()}
    if isinstance(hint, type) and _is_record(hint):
        return _build(hint, value)
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(value)
        except ValueError:
            raise Unreadable(f"{where}: {value!r}") from None
    return _scalar([hint], value, where)


def _scalar(options: list[Any], value: JSON, where: str) -> object:
    for option in options:
        if option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if option in (int, str, bool) and type(value) is option:
            return value
    raise Unreadable(f"{where}: {value!r} is not {options}")
