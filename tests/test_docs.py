"""Every pointer into the documentation leads somewhere: a comment or message citing a page
(``docs/metrics.md, "Tensor roles"``, ``docs/design.md "The app"``, ``docs/store.md#tables``,
or in a message for users ``the README, section 'Two commands'``) names a file that exists and,
where it names a heading, a heading of that file; every relative link of the markdown pages
leads to a file, and its ``#anchor`` to a heading there.

A quoted heading matches a heading of the page, case-insensitively and without its code marks,
when it is the heading, its first words (``"Tensor roles"`` for "Tensor roles and the paper's
selection"), or its part after a colon (``"What dyntools checks"`` for "Bad input: what dyntools
checks"). An anchor is GitHub's: the heading in lower case, punctuation dropped, spaces as
hyphens.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from dyntools.app import PAGES

ROOT = Path(__file__).resolve().parent.parent
PAGES_MD = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
SOURCES = sorted(
    {
        *ROOT.glob("dyntools/**/*.py"),
        *ROOT.glob("pages/*.py"),
        ROOT / "streamlit_app.py",
        *ROOT.glob("bench/**/*.py"),
        *ROOT.glob("e2e/**/*.py"),
        *ROOT.glob("scripts/*.py"),
        *ROOT.glob("tests/**/*.py"),
    }
    # This file's own examples of broken citations are meant to be broken.
    - {Path(__file__).resolve()}
)

# A page named from the repository's root (or "the README", as messages for users name it), then
# optionally the heading: "#anchor", or a quoted heading after a comma or a space (in
# parentheses or not, "section" before it or not).
CITATION = re.compile(
    r"(?<![\w./-])(?P<page>docs/[\w.-]+?\.md|README\.md|CONTRIBUTING\.md|the README\b)"
    r"(?:#(?P<anchor>[\w-]+)|(?:,\s*|\s+)\(?(?:section\s+)?(?P<quote>[\"'])"
    r"(?P<heading>[^\"'\n]+)(?P=quote))?"
)
PAGE_NAMES = {"the README": "README.md"}
LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
HEADING = re.compile(r"^#{1,6}[ \t]+(?P<text>.+?)[ \t#]*$", re.M)


@dataclass(frozen=True)
class Pointer:
    where: str  # "dyntools/roles.py:7"
    page: Path
    anchor: str | None = None
    heading: str | None = None


def _prose(text: str) -> str:
    """The markdown without its fenced code blocks (a ``# comment`` there is no heading), lines
    kept in place."""
    return FENCE.sub(lambda block: "\n" * block.group(0).count("\n"), text)


def _plain(heading: str) -> str:
    return " ".join(heading.replace("`", "").split()).lower()


@cache
def headings(page: Path) -> tuple[str, ...]:
    """The headings of a markdown page, as written (code marks included)."""
    return tuple(m["text"] for m in HEADING.finditer(_prose(page.read_text(encoding="utf-8"))))


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    found: set[str] = set()
    for heading in headings(page):
        base = slug(heading)
        anchor, n = base, 0
        while anchor in found:  # a repeated heading gets -1, -2, ...
            n += 1
            anchor = f"{base}-{n}"
        found.add(anchor)
    return frozenset(found)


def heading_matches(cited: str, heading: str) -> bool:
    wanted = _plain(cited)
    full = _plain(heading)
    names = [full, *(part.strip() for part in full.split(":")[1:])]
    return any(name == wanted or name.startswith(wanted + " ") for name in names)


def citations(text: str, where: str) -> Iterator[Pointer]:
    for match in CITATION.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        page = PAGE_NAMES.get(match["page"], match["page"])
        yield Pointer(f"{where}:{line}", ROOT / page, match["anchor"], match["heading"])


def links(page: Path) -> Iterator[Pointer]:
    text = _prose(page.read_text(encoding="utf-8"))
    for match in LINK.finditer(text):
        target = match["target"]
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        line = text.count("\n", 0, match.start()) + 1
        resolved = (page.parent / path).resolve() if path else page
        shown = page.relative_to(ROOT) if page.is_relative_to(ROOT) else page
        yield Pointer(f"{shown}:{line}", resolved, anchor or None)


def problem(pointer: Pointer) -> str | None:
    """What is wrong with a pointer, or None."""
    page = pointer.page
    shown = f"{pointer.where}: {page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}"
    if not pointer.page.exists():
        return f"{shown} does not exist"
    if pointer.page.suffix != ".md":
        return None
    if pointer.anchor is not None and pointer.anchor not in anchors(pointer.page):
        return f"{shown} has no heading with the anchor #{pointer.anchor}"
    if pointer.heading is not None and not any(
        heading_matches(pointer.heading, h) for h in headings(pointer.page)
    ):
        return f'{shown} has no heading "{pointer.heading}"'
    return None


def source_citations() -> list[Pointer]:
    return [
        pointer
        for source in SOURCES
        for pointer in citations(source.read_text(encoding="utf-8"), str(source.relative_to(ROOT)))
    ]


def test_code_cites_pages_and_headings_that_exist() -> None:
    found = source_citations()
    assert len(found) > 20  # the parser still finds the citations the code makes
    wrong = [p for p in map(problem, found) if p]
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("page", PAGES_MD, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_of_the_docs_lead_to_files_and_headings(page: Path) -> None:
    wrong = [p for p in map(problem, links(page)) if p]
    assert not wrong, "\n".join(wrong)


def test_a_broken_citation_or_link_is_reported(tmp_path: Path) -> None:
    # Built from parts, so that the scan of the sources does not read them as citations.
    metrics = "docs/" + "metrics.md"
    cited = list(
        citations(
            f'roles ({metrics}, "Tensor roles"), ({metrics} "Rising crash"), {metrics}#time\n'
            f'({metrics}, "No such heading"), {metrics}#no-such-anchor, docs/{"gone"}.md',
            "x.py",
        )
    )
    assert [(p.anchor, p.heading) for p in cited] == [
        (None, "Tensor roles"),
        (None, "Rising crash"),
        ("time", None),
        (None, "No such heading"),
        ("no-such-anchor", None),
        (None, None),
    ]
    assert [problem(p) is None for p in cited] == [True, True, True, False, False, False]
    assert cited[3].where == "x.py:2"

    page = tmp_path / "page.md"
    page.write_text("# Page\n\n[ok](#page) [bad](#nowhere) [gone](missing.md)\n", encoding="utf-8")
    assert [problem(p) is None for p in links(page)] == [True, False, False]


def test_a_message_citing_the_readme_by_section_is_checked() -> None:
    # The form of a message shown to users (dyntools.checkpoints.discover.SUPPORTED).
    cited = list(
        citations(
            "see the README, section 'Reading checkpoint folders you already have'\n"
            "see the README, section 'No such heading'; the README's table",
            "x.py",
        )
    )
    assert [(p.page, p.heading) for p in cited] == [
        (ROOT / "README.md", "Reading checkpoint folders you already have"),
        (ROOT / "README.md", "No such heading"),
        (ROOT / "README.md", None),
    ]
    assert [problem(p) is None for p in cited] == [True, False, True]
    assert any(
        p.where.startswith("dyntools/checkpoints/discover.py:") and p.heading
        for p in source_citations()
    )


def test_headings_and_anchors_are_read_as_github_makes_them() -> None:
    assert slug("Hidden Markov model (`python -m bench hmm`)") == (
        "hidden-markov-model-python--m-bench-hmm"
    )
    assert slug("Tensor roles and the paper's selection") == "tensor-roles-and-the-papers-selection"
    assert heading_matches("what dyntools checks", "Bad input: what dyntools checks")
    assert heading_matches("Information plane", "Information plane (`InformationPlane`)")
    assert not heading_matches(
        "The paper features", "Which tensors the reference feeds the paper features"
    )
    assert heading_matches("Tensor roles", "Tensor roles and the paper's selection")
    assert not heading_matches("Tensor role", "Tensor roles")  # whole words only


def test_the_router_docstring_lists_every_page() -> None:
    doc = (ROOT / "dyntools" / "app" / "main.py").read_text(encoding="utf-8").split('"""')[1]
    listed = set(re.findall(r"(?<![\w-])/([a-z-]*)", doc))
    default = PAGES[0].url_path  # the first page is served at /
    assert listed == {"", *(page.url_path for page in PAGES if page.url_path != default)}
