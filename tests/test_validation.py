"""probe/validation.py, the config's validator (issue #22: pydantic out of the process): every
problem collected with its key path and pydantic's words, strict types, finite numbers, unknown
keys refused, defaults not checked, frozen records; what the config's own tests rely on, seen
here on small models of its own."""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict

import pytest

from probe.validation import AfterValidator, BaseModel, BeforeValidator, Field, ValidationError, field_validator, model_validator


def _upper(value: str) -> str:
    if value != value.upper():
        raise ValueError(f"{value!r} is not upper case")
    return value


Upper = Annotated[str, AfterValidator(_upper)]
Port = Annotated[int, Field(gt=0, lt=65536)]
Network = Annotated[ipaddress.IPv4Network | ipaddress.IPv6Network, BeforeValidator(lambda v: v)]


class Inner(BaseModel):
    name: Upper
    ports: list[Port] = Field(default_factory=lambda: [443], max_length=3)


class Params(TypedDict, total=False):
    inner: Inner
    seconds: float


class Outer(BaseModel):
    inners: list[Inner] = Field(default_factory=list, min_length=1)
    kind: Literal["a", "b", "c"] = "a"
    seconds: float = Field(5.0, gt=0, le=600.0)
    count: int = Field(1, ge=1, le=2**40)
    flag: bool = False
    text: str | None = Field(None, min_length=2, max_length=4)
    path: Path | None = None
    tags: tuple[str, ...] = ()
    table: dict[str, int] = Field(default_factory=dict, max_length=2)
    network: Network | None = None
    params: Params = Field(default_factory=dict)  # type: ignore[assignment]
    given_twice: int = 0

    @field_validator("given_twice", mode="before")
    @classmethod
    def _double(cls, value: Any) -> Any:
        return value * 2 if type(value) is int else value

    @model_validator(mode="after")
    def _not_both(self) -> Outer:
        if self.flag and self.kind == "c":
            raise ValueError("flag and kind c exclude each other")
        return self


def _problems(data: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate(data)
    return [(".".join(map(str, e["loc"])), e["msg"]) for e in caught.value.errors()]


@pytest.mark.parametrize(
    "data, key, message",
    [
        ({"seconds": "5"}, "seconds", "Input should be a valid number"),
        ({"seconds": True}, "seconds", "Input should be a valid number"),
        ({"seconds": float("inf")}, "seconds", "Input should be a finite number"),
        ({"seconds": float("nan")}, "seconds", "Input should be a finite number"),
        ({"seconds": 10**400}, "seconds", "Input should be a finite number"),
        ({"seconds": 0}, "seconds", "Input should be greater than 0"),
        ({"seconds": 601}, "seconds", "Input should be less than or equal to 600"),
        ({"count": 1.0}, "count", "Input should be a valid integer"),
        ({"count": True}, "count", "Input should be a valid integer"),
        ({"count": 0}, "count", "Input should be greater than or equal to 1"),
        ({"count": 2**41}, "count", "Input should be less than or equal to 1099511627776"),
        ({"flag": 1}, "flag", "Input should be a valid boolean"),
        ({"kind": "d"}, "kind", "Input should be 'a', 'b' or 'c'"),
        ({"kind": True}, "kind", "Input should be 'a', 'b' or 'c'"),
        ({"text": 5}, "text", "Input should be a valid string"),
        ({"text": "x"}, "text", "String should have at least 2 characters"),
        ({"text": "xxxxx"}, "text", "String should have at most 4 characters"),
        ({"path": 5}, "path", "Input is not a valid path for <class 'pathlib.Path'>"),
        ({"tags": "ab"}, "tags", "Input should be a valid tuple"),
        ({"table": []}, "table", "Input should be a valid dictionary"),
        ({"table": {1: 1}}, "table.1", "Input should be a valid string"),
        ({"table": {"a": 1, "b": 2, "c": 3}}, "table", "Dictionary should have at most 2 items after validation, not more"),
        ({"inners": {}}, "inners", "Input should be a valid list"),
        ({"inners": []}, "inners", "List should have at least 1 item after validation, not 0"),
        ({"inners": [5]}, "inners.0", "Input should be a valid dictionary or instance of Inner"),
        ({"inners": [{"name": "x"}]}, "inners.0.name", "'x' is not upper case"),
        ({"inners": [{"name": "X", "ports": [0]}]}, "inners.0.ports.0", "Input should be greater than 0"),
        ({"inners": [{"name": "X", "ports": [1, 2, 3, 4]}]}, "inners.0.ports", "List should have at most 3 items after validation, not 4"),
        ({"inners": [{}]}, "inners.0.name", "Field required"),
        ({"colour": "blue"}, "colour", "Extra inputs are not permitted"),
        ({"params": {"telepathy": {}}}, "params.telepathy", "Extra inputs are not permitted"),
        ({"params": {"seconds": "x"}}, "params.seconds", "Input should be a valid number"),
        ({"params": {"inner": {"name": 1}}}, "params.inner.name", "Input should be a valid string"),
        ({"flag": True, "kind": "c"}, "", "flag and kind c exclude each other"),
        (["not", "a", "mapping"], "", "Input should be a valid dictionary or instance of Outer"),
    ],
)
def test_each_problem_has_its_key_and_pydantics_words(data, key, message):
    assert _problems(data) == [(key, message)]


def test_a_network_is_one_family_or_the_other():
    assert Outer.model_validate({"network": "10.0.0.0/8"}).network == ipaddress.ip_network("10.0.0.0/8")
    assert Outer.model_validate({"network": "::1/128"}).network == ipaddress.ip_network("::1/128")
    assert _problems({"network": "10.0.0.1/8"}) == [("network", "Input is not a valid IPv4 network"), ("network", "Input is not a valid IPv6 network")]


def test_every_problem_is_reported_fields_in_order_then_unknown_keys():
    data = {"zzz": 1, "count": "1", "inners": [{"name": "x"}, {"name": "Y", "ports": [True]}], "seconds": -1, "aaa": 2}
    assert _problems(data) == [
        ("inners.0.name", "'x' is not upper case"),
        ("inners.1.ports.0", "Input should be a valid integer"),
        ("seconds", "Input should be greater than 0"),
        ("count", "Input should be a valid integer"),
        ("zzz", "Extra inputs are not permitted"),
        ("aaa", "Extra inputs are not permitted"),
    ]


def test_records_are_typed_frozen_and_know_what_was_given():
    outer = Outer.model_validate({"inners": [{"name": "X"}], "seconds": 3, "path": "/tmp/x", "tags": ["a"], "given_twice": 4})
    assert outer.seconds == 3.0 and type(outer.seconds) is float
    assert outer.path == Path("/tmp/x") and outer.tags == ("a",) and outer.given_twice == 8
    assert outer.inners == [Inner(name="X", ports=[443])]  # a default, made per record
    assert outer.model_fields_set == {"inners", "seconds", "path", "tags", "given_twice"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        outer.seconds = 4.0  # type: ignore[misc]
    assert Outer.model_validate({**outer.model_dump(), "given_twice": 4}) == outer  # plain data again, read back
    copy = outer.model_copy(update={"seconds": -5.0})  # not checked again, as pydantic's
    assert copy.seconds == -5.0 and copy.model_fields_set == outer.model_fields_set
    assert Outer.model_validate({"inners": [outer.inners[0]]}).inners[0] is outer.inners[0]  # a record is taken as it is


def test_defaults_are_not_validated():
    class Lenient(BaseModel):
        name: Upper = "lower"  # never checked: a default is the program's, not the file's

    assert Lenient.model_validate({}).name == "lower"
    assert Lenient.model_construct(name="x").name == "x"


def test_built_with_keywords_a_record_is_checked_as_pydantics_were():
    inner = Inner(name="X", ports=[80])
    assert inner.ports == [80] and inner.model_fields_set == {"name", "ports"}
    assert Outer(inners=[inner], seconds=3).seconds == 3.0 and type(Outer(inners=[inner], seconds=3).seconds) is float
    with pytest.raises(ValueError, match="'x' is not upper case"):
        Inner(name="x")
    with pytest.raises(ValidationError) as caught:
        Outer(flag=True, kind="c")
    assert [e["msg"] for e in caught.value.errors()] == ["flag and kind c exclude each other"]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        Inner(name="X", colour="blue")
    assert Inner.model_construct(name="x").name == "x"  # model_construct and model_copy check nothing
    assert inner.model_copy(update={"name": "y"}).name == "y"
