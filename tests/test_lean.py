"""probe.lean: dataclasses with shared `__repr__`/`__eq__`/`__hash__` answer as `@dataclass` does,
and the records `once` imports at start-up are made that way (issue #22)."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from probe import model, params
from probe.config import errors as config_errors
from probe.config import models as config_models
from probe.lean import lean_dataclass


def _pair(frozen: bool, slots: bool) -> tuple[type, type]:
    """The same record, once by `dataclass`, once by `lean_dataclass`."""

    def body() -> dict[str, object]:
        return {
            "__annotations__": {"name": "str", "count": "int", "note": "str", "tags": "list[str]", "weight": "float"},
            "count": 0,
            "note": dataclasses.field(default="", compare=False, repr=False),
            "tags": dataclasses.field(default_factory=list, hash=False),
            "weight": 1.0,
        }

    plain = dataclasses.dataclass(type("Rec", (), body()), frozen=frozen, slots=slots)
    lean = lean_dataclass(frozen=frozen, slots=slots)(type("Rec", (), body()))
    return plain, lean


@pytest.mark.parametrize("frozen", [False, True])
@pytest.mark.parametrize("slots", [False, True])
def test_answers_as_dataclass_does(frozen: bool, slots: bool) -> None:
    plain, lean = _pair(frozen, slots)
    nan = math.nan
    for kind in (plain, lean):
        a, b = kind("x", 2, "one", ["t"], nan), kind("x", 2, "two", ["t"], nan)
        c = kind("x", 3)
        assert dataclasses.is_dataclass(a) and [f.name for f in dataclasses.fields(a)] == ["name", "count", "note", "tags", "weight"]
        assert a == b and a != c  # `note` is not compared; the same NaN object is equal to itself in a tuple
        assert (a == "x") is False and a.__eq__("x") is NotImplemented
        assert dataclasses.asdict(a)["tags"] == ["t"] and dataclasses.replace(a, count=5).count == 5
        assert kind.__match_args__ == ("name", "count", "note", "tags", "weight")
    assert repr(lean("x", 2, "hidden", ["t"])) == repr(plain("x", 2, "hidden", ["t"])).replace(plain.__qualname__, lean.__qualname__)
    if frozen:
        assert hash(lean("x", 2, "a", ["t"])) == hash(lean("x", 2, "b", ["u"]))  # `note` and `tags` not hashed
        assert hash(lean("x", 2)) != hash(lean("x", 3))
        with pytest.raises(dataclasses.FrozenInstanceError):
            lean("x").count = 1  # type: ignore[attr-defined]
    else:
        assert lean.__hash__ is None and plain.__hash__ is None
        with pytest.raises(TypeError):
            hash(lean("x"))


def test_a_class_keeps_its_own_methods() -> None:
    @lean_dataclass(frozen=True, slots=True)
    class Own:
        value: int

        def __repr__(self) -> str:
            return "own"

        def __eq__(self, other: object) -> bool:
            return True

    @lean_dataclass(frozen=True)
    class OwnHash:
        value: int

        def __hash__(self) -> int:
            return 7

    assert repr(Own(1)) == "own" and Own(1) == Own(2)
    assert hash(Own(1)) == hash(Own(1)) != hash(Own(2))  # its __eq__ alone: dataclass adds a hash of the fields, as here
    assert hash(OwnHash(1)) == 7 and OwnHash(1) == OwnHash(1) and OwnHash(1) != OwnHash(2)


def test_a_subclass_compares_its_own_fields() -> None:
    @lean_dataclass(slots=True)
    class Base:
        a: int

    @lean_dataclass(slots=True)
    class Child(Base):
        b: int = 0

    assert Child(1, 2) == Child(1, 2) and Child(1, 2) != Child(1, 3)
    assert Child(1) != Base(1) and repr(Child(1, 2)) == "test_a_subclass_compares_its_own_fields.<locals>.Child(a=1, b=2)"


def test_the_start_up_records_share_their_methods() -> None:
    """Their `__repr__`, `__eq__`, `__hash__` compiled per class cost `once` about 0.08 s of
    start-up: probe.model's records, the config's models and the checks' parameters share them."""
    records = [v for v in vars(model).values() if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == model.__name__]
    models = [v for m in (config_models, config_errors, params) for v in vars(m).values() if isinstance(v, type) and dataclasses.is_dataclass(v) and v.__module__ == m.__name__]
    assert len(records) >= 40 and len(models) >= 20
    for kind in records + models:
        assert kind.__eq__.__module__ == "probe.lean", kind
        assert kind.__repr__.__module__ == "probe.lean" or kind is model.VantageResult, kind
    finding = model.Finding(model.Verdict.SNI_BLOCKED, model.Fault.PATH, "decoy_sni")
    assert hash(finding) == hash(dataclasses.replace(finding)) and params.TLSParams(tries=1) == params.TLSParams(tries=1)


_GENERATED_CLASS = """
import dataclasses, json, sys
import probe.lean

@dataclasses.dataclass(frozen=True)
class Record:
    name: str
    tags: list[str] = dataclasses.field(default_factory=list)

@dataclasses.dataclass(frozen=True)
class Twin:  # the same fields: the same texts as Record's, run twice in one process
    name: str
    tags: list[str] = dataclasses.field(default_factory=list)

record = Record("x")
assert Twin("x") != record and Twin("x") == Twin("x")
try:
    record.name = "y"
    frozen = False
except dataclasses.FrozenInstanceError:
    frozen = True
compiled_here = bool(probe.lean._COMPILED)
probe.lean.save_generated_code()
print(json.dumps({"compiled_here": compiled_here, "frozen": frozen, "tags": record.tags,
                  "annotations": {k: repr(v) for k, v in Record.__init__.__annotations__.items()},
                  "doc": Record.__doc__}))
"""


def _generated_class(env: dict[str, str]) -> dict[str, object]:
    root = Path(__file__).resolve().parent.parent
    run = subprocess.run([sys.executable, "-c", _GENERATED_CLASS], check=True, capture_output=True, text=True, timeout=60, cwd=root,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(root), **env})
    answer: dict[str, object] = json.loads(run.stdout)
    return answer


def test_generated_methods_are_compiled_once_across_processes(tmp_path: Path) -> None:
    """The code `dataclass` generates is kept beside probe.lean's bytecode (here under a
    PYTHONPYCACHEPREFIX of the test's own) and the next process runs it without compiling: the
    same record, frozen as before, its `__init__`'s annotations the types (not the strings this
    module's `from __future__ import annotations` would make of them)."""
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path)}
    first, second = _generated_class(env), _generated_class(env)
    assert first["compiled_here"] is True and second["compiled_here"] is False
    assert first == {**second, "compiled_here": True}
    assert second["frozen"] is True and second["tags"] == []
    assert second["annotations"] == {"name": "<class 'str'>", "tags": "list[str]", "return": "None"}
    assert second["doc"] == "Record(name: str, tags: list[str] = <factory>)"


def test_no_generated_code_kept_when_python_writes_no_bytecode(tmp_path: Path) -> None:
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    assert _generated_class(env)["compiled_here"] is True and _generated_class(env)["compiled_here"] is True
    assert not list(tmp_path.rglob("*.dataclass-code"))


def test_a_torn_cache_file_is_compiled_afresh(tmp_path: Path) -> None:
    env = {"PYTHONPYCACHEPREFIX": str(tmp_path)}
    _generated_class(env)
    [kept] = tmp_path.rglob("*.dataclass-code")
    kept.write_bytes(kept.read_bytes()[: len(kept.read_bytes()) // 2])
    assert _generated_class(env)["compiled_here"] is True and _generated_class(env)["compiled_here"] is False
