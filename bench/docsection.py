"""docs/benchmarks.md, one bench's section at a time: every bench script writes its own section
between its two markers and leaves the rest of the file as it is."""

from __future__ import annotations

from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(section: str, start_marker: str, end_marker: str, doc: Path = DOC) -> None:
    """Replace the section from `start_marker` to `end_marker` (both kept, as `section` carries
    them); a section not there yet is appended."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if start_marker in text and end_marker in text:
        before, rest = text.split(start_marker, 1)
        _, after = rest.split(end_marker, 1)
        text = before + section.rstrip("\n") + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    doc.parent.mkdir(exist_ok=True)
    doc.write_text(text)
