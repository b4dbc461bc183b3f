"""Typed, frozen records from YAML data, every problem named with its key path: the config's
validator (issue #22: the long-lived process without pydantic's 13 MiB).

The config's models (probe/config/models.py, probe/params.py, the web config, the helper's
settings) are written in pydantic's vocabulary, the subset they used — `BaseModel`, `Field`,
`field_validator`, `model_validator`, `AfterValidator`, `BeforeValidator`, `model_validate`,
`model_copy`, `model_dump` — so they read, and merge, as they did; here that subset means frozen
dataclasses checked by the standard library. What pydantic was asked for on every model holds for
every model here without being asked: unknown keys are refused, types are strict (`true` is not a
number, `1` not a boolean, `"3"` not an integer; an integer is a float), numbers are finite,
defaults are not validated. Every problem is collected, not only the first, as a location and a
message in pydantic's words (which the config's tests and users' habits know).

Standard library only (and probe.lean, which is): `probe.params` imports this, and `probe.config` imports both.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import math
import types
import typing
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import (
    Annotated,
    Any,
    Literal,
    TypedDict,
    TypeVar,
    dataclass_transform,
    get_args,
    get_origin,
)

from probe.lean import share_methods

Loc = tuple[str | int, ...]
Errors = list[tuple[Loc, str]]
Check = Callable[[Any, Loc, Errors], Any]  # the value converted, or INVALID with errors added
M = TypeVar("M", bound="BaseModel")

INVALID: Any = type("Invalid", (), {"__repr__": lambda self: "INVALID"})()
_MISSING: Any = dataclasses.MISSING


class ErrorDetails(TypedDict):
    loc: Loc
    msg: str


class ValidationError(ValueError):
    """Every problem of one validation, in the order met (fields in declaration order, then
    unknown keys in the order written)."""

    def __init__(self, title: str, errors: Errors) -> None:
        self.title = title
        self._errors = errors
        super().__init__(f"{len(errors)} validation error(s) for {title}: " + "; ".join(f"{'.'.join(map(str, loc)) or '<top>'}: {msg}" for loc, msg in errors))

    def errors(self) -> list[ErrorDetails]:
        return [{"loc": loc, "msg": msg} for loc, msg in self._errors]


# --- declarations ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class FieldInfo:
    """A field's default and bounds (`Field(...)`), as a class attribute or inside `Annotated`."""

    default: Any = _MISSING
    default_factory: Callable[[], Any] | None = None
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    min_length: int | None = None
    max_length: int | None = None

    def bounded(self) -> bool:
        return any(v is not None for v in (self.gt, self.ge, self.lt, self.le, self.min_length, self.max_length))


def Field(  # noqa: N802 - pydantic's name, which the models are written with
    default: Any = _MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
    min_length: int | None = None,
    max_length: int | None = None,
) -> Any:
    return FieldInfo(default, default_factory, gt, ge, lt, le, min_length, max_length)


@dataclasses.dataclass(frozen=True, eq=False)
class AfterValidator:
    """In `Annotated[T, AfterValidator(f)]`: f(value) after T's check; a ValueError is a problem."""

    func: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True, eq=False)
class BeforeValidator:
    """In `Annotated[T, BeforeValidator(f)]`: f(raw value) before T's check."""

    func: Callable[[Any], Any]


@dataclasses.dataclass(frozen=True, eq=False)
class _FieldValidator:
    function: Any  # a classmethod: (cls, value) -> value
    fields: tuple[str, ...]
    mode: Literal["before", "after"]


@dataclasses.dataclass(frozen=True, eq=False)
class _ModelValidator:
    function: Callable[[Any], Any]  # (self) -> self, after every field passed


def field_validator(*fields: str, mode: Literal["before", "after"] = "after") -> Callable[[Any], Any]:
    """A classmethod checking (and possibly changing) the value of the named fields."""
    return lambda function: _FieldValidator(function, fields, mode)


def model_validator(*, mode: Literal["after"]) -> Callable[[Callable[[Any], Any]], Any]:
    """A method checking the whole record once each field passed; a ValueError is the record's problem."""
    return lambda function: _ModelValidator(function)


# --- models ----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Schema:
    fields: tuple[tuple[str, Check, bool], ...]  # name, check, required
    names: frozenset[str]
    before: dict[str, list[Callable[[Any], Any]]]
    after: dict[str, list[Callable[[Any], Any]]]
    model: tuple[Callable[[Any], Any], ...]


# `Field` is not named a field specifier: type checkers would then read only `Field(default=x)`
# as a default, where the models write `Field(x, …)`; as a plain value, every `= Field(…)` is one.
@dataclass_transform(kw_only_default=True, frozen_default=True)
class BaseModel:
    """A frozen dataclass (keyword arguments, compared by value) that `model_validate` builds
    from YAML data. Its checks are compiled from the type hints at the first validation.
    Built with keywords (`TLSParams(tries=1)`), a record is checked the same way, as pydantic's
    were: a ValidationError (a ValueError) names what is wrong."""

    __validators__: typing.ClassVar[tuple[_FieldValidator | _ModelValidator, ...]] = ()
    __schema__: typing.ClassVar[_Schema | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found = list(cls.__validators__)
        for name, value in list(vars(cls).items()):
            if isinstance(value, FieldInfo):
                setattr(cls, name, dataclasses.field(default=value.default, default_factory=value.default_factory or _MISSING, metadata={"rules": value}))
            elif isinstance(value, _FieldValidator | _ModelValidator):
                found.append(value)
                setattr(cls, name, value.function)
        cls.__validators__ = tuple(found)
        cls.__schema__ = None
        dataclasses.dataclass(frozen=True, kw_only=True, repr=False, eq=False)(cls)
        share_methods(cls, frozen=True)  # not compiled per class: they cost start-up
        cls.__unchecked_init__ = cls.__init__  # type: ignore[attr-defined]  # the dataclass's own: fields as given
        cls.__init__ = _checked_init  # type: ignore[method-assign,assignment]

    @classmethod
    def model_validate(cls: type[M], data: Any) -> M:
        errors: Errors = []
        value = _check_model(cls, data, (), errors)
        if errors:
            raise ValidationError(cls.__name__, errors)
        return typing.cast(M, value)

    @classmethod
    def model_construct(cls: type[M], **values: Any) -> M:
        """Built as given, nothing checked (tests build what a config could not hold)."""
        return _unchecked(cls, values)

    def model_copy(self: M, *, update: dict[str, Any] | None = None) -> M:
        """A copy with some fields replaced, not checked again (as pydantic's)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}  # type: ignore[arg-type]
        copy = _unchecked(type(self), {**values, **(update or {})})
        object.__setattr__(copy, "_fields_set", self.model_fields_set | set(update or ()))
        return copy

    def model_dump(self, mode: Literal["python"] = "python") -> dict[str, Any]:
        """Plain data again: nested records as dicts (what `model_validate` takes back)."""
        return {field.name: _dump(getattr(self, field.name)) for field in dataclasses.fields(self)}  # type: ignore[arg-type]

    @property
    def model_fields_set(self) -> frozenset[str]:
        """The fields the data gave (the others hold their defaults)."""
        given = self.__dict__.get("_fields_set")
        return frozenset(given) if given is not None else frozenset(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, list):
        return [_dump(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_dump(item) for item in value)
    if isinstance(value, dict):
        return {key: _dump(item) for key, item in value.items()}
    return value


def _schema(cls: type[BaseModel]) -> _Schema:
    known: _Schema | None = cls.__dict__.get("__schema__")
    if known is not None:
        return known
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        check = _check_for(hints[field.name])
        rules = field.metadata.get("rules")
        if rules is not None and rules.bounded():
            check = _bounded(check, rules)
        required = field.default is _MISSING and field.default_factory is _MISSING
        fields.append((field.name, check, required))
    before: dict[str, list[Callable[[Any], Any]]] = {}
    after: dict[str, list[Callable[[Any], Any]]] = {}
    for validator in cls.__validators__:
        if isinstance(validator, _FieldValidator):
            bound = validator.function.__get__(None, cls)  # the classmethod, bound to this class
            for name in validator.fields:
                (before if validator.mode == "before" else after).setdefault(name, []).append(bound)
    model = tuple(v.function for v in cls.__validators__ if isinstance(v, _ModelValidator))
    schema = _Schema(tuple(fields), frozenset(name for name, _, _ in fields), before, after, model)
    cls.__schema__ = schema
    return schema


def _checked_init(self: BaseModel, **data: Any) -> None:
    """A model's `__init__`: the keywords checked as `model_validate` checks data."""
    errors: Errors = []
    _check_model(type(self), data, (), errors, into=self)
    if errors:
        raise ValidationError(type(self).__name__, errors)


def _unchecked(cls: type[M], values: dict[str, Any]) -> M:
    record = cls.__new__(cls)
    cls.__unchecked_init__(record, **values)  # type: ignore[attr-defined]
    return record


def _check_model(cls: type[BaseModel], data: Any, loc: Loc, errors: Errors, *, into: BaseModel | None = None) -> Any:
    """The record `data` describes (INVALID, with `errors` added, when it cannot be one);
    `into`: a record being built by its `__init__`, filled instead of a new one."""
    if isinstance(data, cls) and into is None:
        return data
    if not isinstance(data, dict):
        errors.append((loc, f"Input should be a valid dictionary or instance of {cls.__name__}"))
        return INVALID
    schema = _schema(cls)
    start = len(errors)
    values: dict[str, Any] = {}
    for name, check, required in schema.fields:
        if name not in data:
            if required:
                errors.append(((*loc, name), "Field required"))
            continue
        where = (*loc, name)
        value = data[name]
        before, after = schema.before.get(name), schema.after.get(name)  # most fields have none
        if before:
            value = _call_each(before, value, where, errors)
        if value is not INVALID:
            value = check(value, where, errors)
        if after and value is not INVALID:
            value = _call_each(after, value, where, errors)
        values[name] = value
    for key in data:
        if key not in schema.names:
            errors.append(((*loc, key), "Extra inputs are not permitted"))
    if len(errors) > start:
        return INVALID
    record = _unchecked(cls, values) if into is None else into
    if into is not None:
        cls.__unchecked_init__(into, **values)  # type: ignore[attr-defined]
    object.__setattr__(record, "_fields_set", frozenset(values))
    for validate in schema.model:
        try:
            validate(record)
        except ValueError as exc:
            errors.append((loc, str(exc)))
            return INVALID
    return record


def _call_each(functions: Iterable[Callable[[Any], Any]], value: Any, loc: Loc, errors: Errors) -> Any:
    for function in functions:
        try:
            value = function(value)
        except ValueError as exc:
            errors.append((loc, str(exc)))
            return INVALID
    return value


# --- types -----------------------------------------------------------------------------------------

_CHECKS: dict[Any, Check] = {}


def _check_for(hint: Any) -> Check:
    """The check of a type hint (cached: the same hint recurs across models)."""
    try:
        return _CHECKS[hint]
    except KeyError:
        pass
    except TypeError:  # an unhashable hint
        return _compile(hint)
    check = _CHECKS[hint] = _compile(hint)
    return check


def _compile(hint: Any) -> Check:
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return _annotated(_check_for(args[0]), hint.__metadata__)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        inner = _check_for(members[0]) if len(members) == 1 else _union([_check_for(m) for m in members])
        return _nullable(inner) if len(members) < len(args) else inner
    if origin is Literal:
        return _literal(args)
    if origin is list:
        return _sequence(list, "list", _check_for(args[0]))
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"only tuple[X, ...] is supported, not {hint}")
        return _sequence(tuple, "tuple", _check_for(args[0]))
    if origin is dict:
        return _mapping(_check_for(args[0]), _check_for(args[1]))
    if hint is Any or hint is object:
        return lambda value, loc, errors: value
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return lambda value, loc, errors: _check_model(hint, value, loc, errors)
    if typing.is_typeddict(hint):
        return _typed_dict(hint)
    simple = _SIMPLE.get(hint)
    if simple is None:
        raise TypeError(f"no check for {hint!r}")
    return simple


def _str(value: Any, loc: Loc, errors: Errors) -> Any:
    if isinstance(value, str):
        return value
    errors.append((loc, "Input should be a valid string"))
    return INVALID


def _bool(value: Any, loc: Loc, errors: Errors) -> Any:
    if value is True or value is False:
        return value
    errors.append((loc, "Input should be a valid boolean"))
    return INVALID


def _int(value: Any, loc: Loc, errors: Errors) -> Any:
    if type(value) is int:
        return value
    errors.append((loc, "Input should be a valid integer"))
    return INVALID


def _float(value: Any, loc: Loc, errors: Errors) -> Any:
    if type(value) is float or type(value) is int:
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            number = math.inf
        if math.isfinite(number):
            return number
        errors.append((loc, "Input should be a finite number"))
        return INVALID
    errors.append((loc, "Input should be a valid number"))
    return INVALID


def _path(value: Any, loc: Loc, errors: Errors) -> Any:
    if isinstance(value, Path):
        return value
    if isinstance(value, str):
        return Path(value)
    errors.append((loc, "Input is not a valid path for <class 'pathlib.Path'>"))
    return INVALID


def _network(kind: type[ipaddress.IPv4Network] | type[ipaddress.IPv6Network], label: str) -> Check:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if isinstance(value, kind):
            return value
        if isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                pass
        errors.append((loc, f"Input is not a valid {label} network"))
        return INVALID

    return check


_SIMPLE: dict[Any, Check] = {
    str: _str,
    bool: _bool,
    int: _int,
    float: _float,
    Path: _path,
    ipaddress.IPv4Network: _network(ipaddress.IPv4Network, "IPv4"),
    ipaddress.IPv6Network: _network(ipaddress.IPv6Network, "IPv6"),
}


def _annotated(inner: Check, metadata: tuple[Any, ...]) -> Check:
    before = [m.func for m in metadata if isinstance(m, BeforeValidator)]
    after = [m.func for m in metadata if isinstance(m, AfterValidator)]
    for rules in metadata:
        if isinstance(rules, FieldInfo) and rules.bounded():
            inner = _bounded(inner, rules)

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        value = _call_each(before, value, loc, errors)
        if value is not INVALID:
            value = inner(value, loc, errors)
        if value is not INVALID:
            value = _call_each(after, value, loc, errors)
        return value

    return check


def _nullable(inner: Check) -> Check:
    return lambda value, loc, errors: None if value is None else inner(value, loc, errors)


def _union(members: list[Check]) -> Check:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        found: Errors = []
        for member in members:
            tried: Errors = []
            result = member(value, loc, tried)
            if result is not INVALID:
                return result
            found.extend(tried)
        errors.extend(found)
        return INVALID

    return check


def _literal(allowed: tuple[Any, ...]) -> Check:
    words = [repr(a) for a in allowed]
    message = "Input should be " + (f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else words[0])

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if any(type(value) is type(a) and value == a for a in allowed):  # `true` is not 1
            return value
        errors.append((loc, message))
        return INVALID

    return check


def _sequence(kind: type[list[Any]] | type[tuple[Any, ...]], name: str, item: Check) -> Check:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if not isinstance(value, list | tuple):
            errors.append((loc, f"Input should be a valid {name}"))
            return INVALID
        start = len(errors)
        items = [item(element, (*loc, index), errors) for index, element in enumerate(value)]
        return INVALID if len(errors) > start else kind(items)

    return check


def _mapping(key: Check, item: Check) -> Check:
    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if not isinstance(value, dict):
            errors.append((loc, "Input should be a valid dictionary"))
            return INVALID
        start = len(errors)
        result = {}
        for k, v in value.items():
            checked_key = key(k, (*loc, k), errors)
            checked = item(v, (*loc, k), errors)
            result[checked_key] = checked
        return INVALID if len(errors) > start else result

    return check


def _typed_dict(hint: Any) -> Check:
    """A dict of known keys, each with its own type (a target's `params`); others refused."""
    checks: dict[str, Check] = {}

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        if not checks:
            checks.update({name: _check_for(h) for name, h in typing.get_type_hints(hint, include_extras=True).items()})
        if not isinstance(value, dict):
            errors.append((loc, "Input should be a valid dictionary"))
            return INVALID
        start = len(errors)
        result = {}
        for k, v in value.items():
            if k in checks:
                result[k] = checks[k](v, (*loc, k), errors)
            else:
                errors.append(((*loc, k), "Extra inputs are not permitted"))
        return INVALID if len(errors) > start else result

    return check


# --- bounds ----------------------------------------------------------------------------------------


def _number_text(bound: float) -> str:
    return str(int(bound)) if isinstance(bound, float) and bound.is_integer() else str(bound)


def _count_text(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _bounded(inner: Check, rules: FieldInfo) -> Check:
    """`inner`, then the bounds of `rules` on what it returned (None passes: an optional field)."""

    def check(value: Any, loc: Loc, errors: Errors) -> Any:
        value = inner(value, loc, errors)
        if value is INVALID or value is None:
            return value
        problem = _bound_problem(value, rules)
        if problem is None:
            return value
        errors.append((loc, problem))
        return INVALID

    return check


def _bound_problem(value: Any, rules: FieldInfo) -> str | None:
    if isinstance(value, int | float):
        if rules.gt is not None and not value > rules.gt:
            return f"Input should be greater than {_number_text(rules.gt)}"
        if rules.ge is not None and not value >= rules.ge:
            return f"Input should be greater than or equal to {_number_text(rules.ge)}"
        if rules.lt is not None and not value < rules.lt:
            return f"Input should be less than {_number_text(rules.lt)}"
        if rules.le is not None and not value <= rules.le:
            return f"Input should be less than or equal to {_number_text(rules.le)}"
        return None
    size = len(value)
    if isinstance(value, str):
        if rules.min_length is not None and size < rules.min_length:
            return f"String should have at least {_count_text(rules.min_length, 'character')}"
        if rules.max_length is not None and size > rules.max_length:
            return f"String should have at most {_count_text(rules.max_length, 'character')}"
        return None
    kind = "List" if isinstance(value, list) else "Tuple" if isinstance(value, tuple) else "Dictionary"
    if rules.min_length is not None and size < rules.min_length:
        return f"{kind} should have at least {_count_text(rules.min_length, 'item')} after validation, not {size}"
    if rules.max_length is not None and size > rules.max_length:
        return f"{kind} should have at most {_count_text(rules.max_length, 'item')} after validation, not {'more' if kind == 'Dictionary' else size}"
    return None
