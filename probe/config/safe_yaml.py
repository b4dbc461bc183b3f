"""YAML parsed once, bounded, with its node tree kept for line numbers.

PyYAML's `safe_load` expands aliases without limit: a 1 KB "billion laughs" file takes minutes
and gigabytes. Here the text is composed once (libyaml's C parser where available; the node
graph shares aliased nodes, so composing is linear in the text) and the data is built from the
node tree with a budget on the values built, aliases counted each time they are expanded.
Duplicate keys, keys that are not plain values, unknown collection tags and aliases that
contain themselves are refused, each with its line.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from probe.config.errors import ConfigError, Problem

MAX_VALUES = 100_000  # values built from one file, aliases expanded: far above any real config
MAX_DEPTH = 64  # nesting of lists and mappings

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # pure Python where libyaml is absent
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"


def parse(text: str, file: str) -> tuple[Any, Node | None]:
    """The data of a one-document YAML text and its node tree. Raises ConfigError."""
    node = compose(text, file)
    if node is None:
        return None, None
    return _Builder(file).build(node), node


def parse_data(text: str, file: str) -> Any:
    """The data only: the node tree is dropped as soon as the data is built (see
    `probe.config.loader.Lines`, which composes it again when a problem needs a line)."""
    return parse(text, file)[0]


def compose(text: str, file: str) -> Node | None:
    loader = _Loader(text)
    try:
        return loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or exc
        if isinstance(exc, yaml.reader.ReaderError):  # a character YAML refuses: no mark, a position
            line = text.count("\n", 0, exc.position) + 1
            problem = f"{exc.reason} (character {exc.character!r})"
        if "nesting depth" in str(problem):
            problem = "nested too deeply"
        raise ConfigError([Problem(file, line, "", f"not valid YAML: {problem}")]) from None
    except RecursionError:  # the pure-Python composer on deep nesting
        raise ConfigError([Problem(file, None, "", "not valid YAML: nested too deeply")]) from None
    finally:
        loader.dispose()


class _Builder:
    """Python values from composed nodes, within MAX_VALUES and MAX_DEPTH."""

    def __init__(self, file: str):
        self.file = file
        self.built = 0
        self.scalars = SafeConstructor()  # PyYAML's own rules for ints, floats, bools, dates…
        self.open: set[int] = set()  # ids of the collections being built: an alias inside itself

    def build(self, node: Node) -> Any:
        return self._value(node, ())

    def _fail(self, node: Node, path: tuple[Any, ...], message: str) -> ConfigError:
        key = ".".join(str(part) for part in path)
        return ConfigError([Problem(self.file, node.start_mark.line + 1, key, message)])

    def _value(self, node: Node, path: tuple[Any, ...]) -> Any:
        self.built += 1
        if self.built > MAX_VALUES:
            raise self._fail(node, path, f"more than {MAX_VALUES} values (aliases expanded): refused")
        if isinstance(node, ScalarNode):
            return self._scalar(node, path)
        if len(path) >= MAX_DEPTH:
            raise self._fail(node, path, f"nested too deeply (more than {MAX_DEPTH} levels)")
        if id(node) in self.open:
            raise self._fail(node, path, "an alias that contains itself")
        self.open.add(id(node))
        try:
            if isinstance(node, SequenceNode) and node.tag == _SEQ:
                return [self._value(item, (*path, index)) for index, item in enumerate(node.value)]
            if isinstance(node, MappingNode) and node.tag == _MAP:
                return self._mapping(node, path)
            raise self._fail(node, path, f"the tag {node.tag} is not supported here")
        finally:
            self.open.discard(id(node))

    def _scalar(self, node: ScalarNode, path: tuple[Any, ...]) -> Any:
        try:
            return self.scalars.construct_object(node, deep=True)
        except ConstructorError as exc:
            raise self._fail(node, path, f"not valid YAML: {exc.problem}") from None
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. an int of 10,000 digits
            raise self._fail(node, path, f"not a valid value: {exc}") from None
        except Exception:  # noqa: BLE001 - PyYAML's own constructors on an explicit tag they cannot read
            # `!!timestamp vantages: []` makes PyYAML raise AttributeError: still the file's fault.
            raise self._fail(node, path, f"not a valid {node.tag.rsplit(':', 1)[-1]} value: {node.value[:40]!r}") from None

    def _mapping(self, node: MappingNode, path: tuple[Any, ...]) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        own: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:  # `<<: *defaults`: the mapping's own keys win
                for source in self._merge_sources(value_node, path):
                    for key, value in self._value(source, path).items():
                        merged.setdefault(key, value)
                continue
            if not isinstance(key_node, ScalarNode):
                raise self._fail(key_node, path, "a key must be a plain value, not a list or mapping")
            key = self._scalar(key_node, path)
            try:
                hash(key)
            except TypeError:
                raise self._fail(key_node, path, "a key must be a plain value") from None
            line = key_node.start_mark.line + 1
            if key in own:
                raise self._fail(key_node, (*path, key), f"duplicate key {key!r} (first at line {first_line[key]})")
            first_line[key] = line
            own[key] = self._value(value_node, (*path, key))
        return {**merged, **own}

    def _merge_sources(self, node: Node, path: tuple[Any, ...]) -> list[MappingNode]:
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                raise self._fail(source, path, "`<<` merges mappings only")
        return sources
