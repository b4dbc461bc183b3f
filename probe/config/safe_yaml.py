"""YAML parsed once, bounded, into data; the node tree only when a problem needs a line.

PyYAML's `safe_load` expands aliases without limit: a 1 KB "billion laughs" file takes minutes
and gigabytes. Here the data is built straight from libyaml's event stream (its C parser where
available) with a budget on the values built, aliases counted each time they are expanded, so no
node tree is held while a config loads (for thousands of targets the tree was most of the load's
memory). Duplicate keys, keys that are not plain values, unknown collection tags and aliases
that contain themselves are refused, each with its line. `compose` builds the node tree, for
the lines of problems found later (`probe.config.loader.Lines`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from probe.config.errors import ConfigError, Problem

MAX_VALUES = 100_000  # values built from one file, aliases expanded: far above any real config
MAX_DEPTH = 64  # nesting of lists and mappings

_Loader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # pure Python where libyaml is absent
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
# Tags whose values are immutable, so one built value may stand for every equal scalar.
_IMMUTABLE = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null", "tag:yaml.org,2002:float"})


def parse(text: str, file: str) -> tuple[Any, Node | None]:
    """The data of a one-document YAML text and its node tree. Raises ConfigError."""
    data = parse_data(text, file)
    return data, compose(text, file)


def parse_data(text: str, file: str) -> Any:
    """The data of a one-document YAML text (None for an empty one). Raises ConfigError."""
    loader = _Loader(text)
    try:
        with _as_problem(text, file):
            return _Builder(file, loader).build()
    finally:
        loader.dispose()


@contextmanager
def _as_problem(text: str, file: str) -> Iterator[None]:
    """PyYAML's errors as one problem with its line."""
    try:
        yield
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


def compose(text: str, file: str) -> Node | None:
    loader = _Loader(text)
    try:
        with _as_problem(text, file):
            return loader.get_single_node()
    finally:
        loader.dispose()


class _Anchored:
    """An anchor's value and what expanding it costs (the values it holds)."""

    __slots__ = ("value", "size", "open")

    def __init__(self) -> None:
        self.value: Any = None
        self.size = 0
        self.open = True  # still being built: an alias to it here contains itself


class _Builder:
    """Python values from the event stream of one document, within MAX_VALUES and MAX_DEPTH."""

    def __init__(self, file: str, loader: Any):
        self.file = file
        self.loader = loader
        self.built = 0
        self.copied = 0  # of `built`, the values aliases copied
        self.scalars = SafeConstructor()  # PyYAML's own rules for ints, floats, bools, dates…
        self.anchors: dict[str, _Anchored] = {}
        # A file of many targets repeats its keys and values (`name`, `ports`, `443`, `tcp`):
        # each implicit tag resolved (PyYAML tries its patterns in turn) and each immutable
        # scalar built once per file.
        self.tags: dict[tuple[str, tuple[bool, bool]], str] = {}
        self.built_scalars: dict[tuple[str, str], Any] = {}
        self.collection_tags: dict[tuple[str, bool], str] = {}

    def build(self) -> Any:
        self._next(yaml.StreamStartEvent)
        if isinstance(self.loader.peek_event(), StreamEndEvent):
            return None  # an empty document
        self._next(DocumentStartEvent)
        value = self._value(self.loader.get_event(), ())
        self._next(yaml.DocumentEndEvent)
        event = self.loader.get_event()
        if not isinstance(event, StreamEndEvent):
            raise yaml.composer.ComposerError(
                "expected a single document in the stream", None, "but found another document", event.start_mark
            )
        return value

    def _next(self, kind: type[Event]) -> Event:
        event = self.loader.get_event()
        assert isinstance(event, kind), event  # libyaml's parser guarantees the stream's shape
        return event

    def _fail(self, event: Event, path: tuple[Any, ...], message: str) -> ConfigError:
        key = ".".join(str(part) for part in path)
        return ConfigError([Problem(self.file, event.start_mark.line + 1, key, message)])

    def _count(self, event: Event, path: tuple[Any, ...], values: int = 1) -> None:
        self.built += values
        if self.built > MAX_VALUES:
            raise self._over_budget(event, path)

    def _over_budget(self, event: Event, path: tuple[Any, ...]) -> ConfigError:
        # Say which budget, and whether aliases spent it: a long plain list of targets is no bomb.
        how = f", {self.copied} of them copied by aliases" if self.copied else ""
        return self._fail(
            event, path,
            f"more than {MAX_VALUES} values in one file{how}: the budget of values one YAML file may hold; "
            "put long target lists in catalog files (`services: [{catalog: FILE}]`), each with a budget of its own",
        )

    def _value(self, event: Event, path: tuple[Any, ...]) -> Any:
        if event.__class__ is ScalarEvent and event.anchor is None:  # most values: the short way
            self.built += 1
            if self.built > MAX_VALUES:
                raise self._over_budget(event, path)
            return self._scalar(event, path)
        if isinstance(event, AliasEvent):
            return self._alias(event, path)
        anchored = None
        if event.anchor is not None:
            if event.anchor in self.anchors:  # as PyYAML's composer: an anchor names one value
                raise yaml.composer.ComposerError(None, None, f"found duplicate anchor {event.anchor!r}", event.start_mark)
            anchored = self.anchors[event.anchor] = _Anchored()
        before = self.built
        self._count(event, path)
        if isinstance(event, ScalarEvent):
            value = self._scalar(event, path)
        else:
            value = self._collection(event, path)
        if anchored is not None:
            anchored.value, anchored.size, anchored.open = value, self.built - before, False
        return value

    def _alias(self, event: AliasEvent, path: tuple[Any, ...]) -> Any:
        anchored = self.anchors.get(event.anchor)
        if anchored is None:
            raise yaml.composer.ComposerError(None, None, f"found undefined alias {event.anchor!r}", event.start_mark)
        if anchored.open:
            raise self._fail(event, path, "an alias that contains itself")
        self.copied += anchored.size
        self._count(event, path, anchored.size)  # before copying: a bomb is refused before it grows
        return copy.deepcopy(anchored.value)

    def _tag(self, event: ScalarEvent) -> str:
        """The scalar's tag, an implicit one resolved as PyYAML's composer does."""
        if event.tag is None or event.tag == "!":
            key = (event.value, event.implicit)
            tag = self.tags.get(key)
            if tag is None:
                tag = self.tags[key] = str(self.loader.resolve(ScalarNode, event.value, event.implicit))
            return tag
        return str(event.tag)

    def _collection_tag(self, kind: type[Node], implicit: bool) -> str:
        key = (kind.id, implicit)
        tag = self.collection_tags.get(key)
        if tag is None:
            tag = self.collection_tags[key] = str(self.loader.resolve(kind, None, implicit))
        return tag

    def _scalar(self, event: ScalarEvent, path: tuple[Any, ...]) -> Any:
        tag = self._tag(event)
        if tag == _STR:
            return event.value  # what SafeConstructor's construct_yaml_str returns, without a node
        if tag in _IMMUTABLE:
            key = (tag, event.value)
            if key in self.built_scalars:
                return self.built_scalars[key]
            value = self.built_scalars[key] = self._construct(tag, event, path)
            return value
        return self._construct(tag, event, path)

    def _construct(self, tag: str, event: ScalarEvent, path: tuple[Any, ...]) -> Any:
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return self.scalars.construct_object(node, deep=True)
        except ConstructorError as exc:
            raise self._fail(event, path, f"not valid YAML: {exc.problem}") from None
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. an int of 10,000 digits
            raise self._fail(event, path, f"not a valid value: {exc}") from None
        except Exception:  # noqa: BLE001 - PyYAML's own constructors on an explicit tag they cannot read
            # `!!timestamp vantages: []` makes PyYAML raise AttributeError: still the file's fault.
            raise self._fail(event, path, f"not a valid {tag.rsplit(':', 1)[-1]} value: {event.value[:40]!r}") from None
        finally:
            # The constructor remembers every node it built (for aliases, which are ours here):
            # kept, that was the whole document's nodes again.
            self.scalars.constructed_objects.clear()

    def _collection(self, event: Event, path: tuple[Any, ...]) -> Any:
        if len(path) >= MAX_DEPTH:
            raise self._fail(event, path, f"nested too deeply (more than {MAX_DEPTH} levels)")
        if isinstance(event, SequenceStartEvent):
            tag = event.tag if event.tag not in (None, "!") else self._collection_tag(SequenceNode, event.implicit)
            if tag != _SEQ:
                raise self._fail(event, path, f"the tag {tag} is not supported here")
            items: list[Any] = []
            while not isinstance(self.loader.peek_event(), SequenceEndEvent):
                items.append(self._value(self.loader.get_event(), (*path, len(items))))
            self.loader.get_event()
            return items
        assert isinstance(event, MappingStartEvent), event
        tag = event.tag if event.tag not in (None, "!") else self._collection_tag(MappingNode, event.implicit)
        if tag != _MAP:
            raise self._fail(event, path, f"the tag {tag} is not supported here")
        return self._mapping(path)

    def _mapping(self, path: tuple[Any, ...]) -> dict[Any, Any]:
        merged: dict[Any, Any] = {}
        own: dict[Any, Any] = {}
        first_line: dict[Any, int] = {}
        while not isinstance(self.loader.peek_event(), MappingEndEvent):
            key_event = self.loader.get_event()
            if isinstance(key_event, ScalarEvent) and self._tag(key_event) == _MERGE:
                for source in self._merge_sources(self.loader.get_event(), path):
                    for key, value in source.items():
                        merged.setdefault(key, value)
                continue
            if not isinstance(key_event, ScalarEvent | AliasEvent) or (isinstance(key_event, AliasEvent) and not self._scalar_alias(key_event)):
                raise self._fail(key_event, path, "a key must be a plain value, not a list or mapping")
            key = self._value(key_event, path)
            try:
                hash(key)
            except TypeError:
                raise self._fail(key_event, path, "a key must be a plain value") from None
            line = key_event.start_mark.line + 1
            if key in own:
                raise self._fail(key_event, (*path, key), f"duplicate key {key!r} (first at line {first_line[key]})")
            first_line[key] = line
            own[key] = self._value(self.loader.get_event(), (*path, key))
        self.loader.get_event()
        return {**merged, **own}

    def _scalar_alias(self, event: AliasEvent) -> bool:
        anchored = self.anchors.get(event.anchor)
        return anchored is None or anchored.open or not isinstance(anchored.value, dict | list)

    def _merge_sources(self, event: Event, path: tuple[Any, ...]) -> list[dict[Any, Any]]:
        """`<<: *defaults` or `<<: [*a, *b]`: mappings only."""
        if isinstance(event, SequenceStartEvent):
            self._count(event, path)
            sources = []
            while not isinstance(self.loader.peek_event(), SequenceEndEvent):
                sources.append(self._merge_source(self.loader.get_event(), path))
            self.loader.get_event()
            return sources
        return [self._merge_source(event, path)]

    def _merge_source(self, event: Event, path: tuple[Any, ...]) -> dict[Any, Any]:
        if not isinstance(event, AliasEvent | MappingStartEvent):
            raise self._fail(event, path, "`<<` merges mappings only")
        value = self._value(event, path)
        if not isinstance(value, dict):
            raise self._fail(event, path, "`<<` merges mappings only")
        return value
