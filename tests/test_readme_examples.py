"""Every Python example in the README and docs/*.md runs as written (from the repository root),
and prints what the page shows when an output block follows it.

An output block is a ```text (or bare ```) block that follows a ```python block with only blank
lines between them. In it, a line holding only ``...`` stands for any number of lines, and ``...``
inside a line for any text within that line; trailing spaces and trailing blank lines are ignored.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!--[^\n]*-->\n)?```python\n(.*?)```[ \t]*\n", re.S)
OUTPUT = re.compile(r"(?:[ \t]*\n)*```(?:text)?[ \t]*\n(.*?)```", re.S)
ELLIPSIS = "..."


@dataclass(frozen=True)
class Example:
    where: str  # "docs/metrics.md:12"
    code: str
    output: str | None  # the shown output, or None when no output block follows


def examples() -> list[Example]:
    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for match in BLOCK.finditer(text):
            marker = match.group(1) or ""
            # Marked blocks are run elsewhere (the writer example) or need a computed database.
            if "not run" in marker or "example:" in marker:
                continue
            shown = OUTPUT.match(text, match.end())
            line = text[: match.start()].count("\n") + (2 if marker else 1)
            found.append(
                Example(
                    where=f"{doc.relative_to(ROOT)}:{line}",
                    code=match.group(2),
                    output=shown.group(1) if shown else None,
                )
            )
    return found


def _lines(text: str) -> list[str]:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def output_pattern(shown: str) -> re.Pattern[str]:
    """A regex for the shown output: ``...`` alone on a line is any lines, in a line any text."""
    parts = []
    for line in _lines(shown):
        if line.strip() == ELLIPSIS:
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            pieces = (re.escape(piece) for piece in line.split(ELLIPSIS))
            parts.append("[^\n]*?".join(pieces) + r"\n")
    return re.compile("".join(parts))


def output_matches(shown: str, actual: str) -> bool:
    lines = _lines(actual)
    return output_pattern(shown).fullmatch("".join(f"{line}\n" for line in lines)) is not None


@pytest.mark.parametrize("example", examples(), ids=lambda e: e.where)
def test_doc_example_runs(example: Example) -> None:
    result = subprocess.run(
        [sys.executable, "-c", example.code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"example at {example.where} failed:\n{result.stderr}"
    if example.output is not None:
        assert output_matches(example.output, result.stdout), (
            f"example at {example.where} printed something else than the page shows.\n"
            f"--- shown ---\n{example.output}\n--- printed ---\n{result.stdout}"
        )


def test_the_docs_have_examples() -> None:
    found = examples()
    assert len(found) >= 3
    assert sum(e.output is not None for e in found) >= 2, "no example shows its output"


def test_output_comparison_can_fail() -> None:
    assert output_matches("a\nb\n", "a\nb\n")
    assert output_matches("a\nb", "a  \nb\n\n")  # trailing spaces and blank lines
    assert not output_matches("a\nb", "a\nc")
    assert not output_matches("a\nb", "a\nb\nc")  # nothing left over
    assert not output_matches("a\nb\nc", "a\nb")
    # ... alone on a line: any number of lines, also none
    assert output_matches("a\n...\nd", "a\nb\nc\nd")
    assert output_matches("a\n  ...\nd", "a\nd")
    assert not output_matches("a\n...\nd", "a\nb\nc\ne")
    # ... inside a line: any text within that line, never across lines
    assert output_matches("value=1.23...", "value=1.2345")
    assert not output_matches("value=1.23...", "value=1.24")
    assert not output_matches("x ... y", "x 1\n2 y")
    # regex characters in the shown output are literal
    assert not output_matches("a.c (1+2)", "abc (1+2)")
    assert output_matches("a.c (1+2)", "a.c (1+2)")


def test_an_output_block_is_found_only_right_after_a_python_block() -> None:
    text = "```python\nprint(1)\n```\n\n```text\n1\n```\n"
    match = BLOCK.search(text)
    assert match is not None
    shown = OUTPUT.match(text, match.end())
    assert shown is not None and shown.group(1) == "1\n"
    for other in (
        "```python\nx = 1\n```\nprose\n```text\n1\n```\n",
        "```python\n```\n```bash\nls\n```\n",
    ):
        match = BLOCK.search(other)
        assert match is not None and OUTPUT.match(other, match.end()) is None
