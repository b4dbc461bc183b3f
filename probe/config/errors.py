"""What a config's problems look like: file, line, key path and message, one per line."""

from __future__ import annotations

from probe.lean import lean_dataclass


@lean_dataclass(frozen=True)
class Problem:
    """One problem in a config: file, line (if known), key and message."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        message = " ".join(self.message.split())  # one problem, one line
        key = "".join(c if c.isprintable() else repr(c)[1:-1] for c in self.key)  # a key may hold a newline
        return f"{where}: {key or '<top>'}: {message}"


class ConfigError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
