"""Names from a user's disk as text that can be stored and shown safely.

File, folder and tensor names are data, written by whoever made the files: a name may hold bytes
that are not UTF-8 (Python keeps them as lone surrogates, which UTF-8 stores refuse) or control
characters (an escape sequence in a name would clear a terminal or retitle it, a newline would
forge an output line). ``path_text`` makes any path storable; ``printable`` makes any text safe
for a terminal. JSON output needs neither: ``json.dumps`` escapes both.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Final

# C0 and C1 control characters and DEL: everything a terminal may act on.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def path_text(path: Path | str) -> str:
    """``path`` as valid UTF-8 text: bytes that are not UTF-8 written as ``\\xNN``."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def printable(text: str) -> str:
    """``text`` with control characters (and undecodable bytes) written as escapes, so that
    printing it shows it rather than acts on it."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return _CONTROL.sub(lambda match: match.group().encode("unicode_escape").decode(), text)


MARKDOWN_SPECIAL: Final = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~$])")


def markdown_literal(text: str) -> str:
    """``text`` shown as it is where Markdown is rendered (module paths hold ``_`` and ``*``)."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)
