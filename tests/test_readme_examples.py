"""Every Python example in the README runs as written (from the repository root)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!--[^\n]*-->\n)?```python\n(.*?)```", re.S)


def examples() -> list[tuple[int, str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for match in BLOCK.finditer(text):
        marker = match.group(1) or ""
        # Marked blocks are run elsewhere (the writer example) or need a computed database.
        if "not run" in marker or "example:" in marker:
            continue
        found.append((text[: match.start()].count("\n") + 1, match.group(2)))
    return found


@pytest.mark.parametrize(("line", "code"), examples(), ids=lambda v: str(v)[:12])
def test_readme_example_runs(line: int, code: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"README example at line {line} failed:\n{result.stderr}"


def test_the_readme_has_examples() -> None:
    assert len(examples()) >= 3
