"""The layer rule of docs/architecture.md, checked on every module's imports (parsed, not run):
no import cycles, imports flow downward only, streamlit only in the app layer, hmmlearn only in
its backend, and importing dyntools imports neither."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dyntools"
DOC = ROOT / "docs" / "architecture.md"

# Each part of dyntools and its layer: a module may import its own part and lower layers only.
LAYERS: dict[str, int] = {
    "dyntools": 0,  # the package root: the version
    "dyntools.lazy": 0,
    "dyntools.processes": 0,
    "dyntools.text": 0,
    "dyntools.checkpoints": 1,
    "dyntools.hookpoints": 1,
    "dyntools.metrics": 1,
    "dyntools.models": 1,
    "dyntools.roles": 1,
    "dyntools.capture": 2,
    "dyntools.crash": 2,  # the rising-crash rule, on dyntools.checkpoints.step_stats
    "dyntools.integrations": 3,  # Trainer and Lightning callbacks (with dyntools.hooks)
    "dyntools.hooks": 2,  # per-step activation statistics in the training loop
    "dyntools.selection": 2,
    "dyntools.store": 2,
    "dyntools.hmm": 3,
    "dyntools.train": 3,  # records per-step statistics with dyntools.hooks
    "dyntools.pipeline": 4,
    "dyntools.cli": 5,
    "dyntools.views": 5,
    "dyntools.charts": 6,
    "dyntools.ui": 7,
    "dyntools.app": 8,
    "dyntools.__main__": 8,
}
# Third-party packages only one part may import.
OWNERS = {
    "streamlit": ("dyntools.ui", "dyntools.app"),
    "streamlit_agraph": ("dyntools.ui",),
    "hmmlearn": ("dyntools.hmm.hmmlearn_backend",),
    # k-means starts of the HMM, and the bundled 8x8 digits the sample tasks train on.
    "sklearn": ("dyntools.hmm.hmmlearn_backend", "dyntools.train.datasets"),
    "duckdb": ("dyntools.store",),
    "ray": ("dyntools.pipeline.ray_backend",),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """Every module an import statement names (at any depth: lazy imports count), with its
    line; ``from package import submodule`` names the submodule."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = [f"{node.module}.{a.name}" for a in node.names]
            named = [s for s in subs if s in MODULES]
            yield from ((s, node.lineno) for s in named)
            if len(named) < len(subs):
                yield node.module, node.lineno


def _part(module: str) -> str:
    """The entry of LAYERS a module belongs to."""
    for depth in (2, 1):
        prefix = ".".join(module.split(".")[:depth])
        if prefix in LAYERS:
            return prefix
    raise LookupError(f"{module} is in no layer: add its package to LAYERS and the docs")


def test_every_module_has_a_layer() -> None:
    for module in MODULES:
        _part(module)


def test_imports_flow_downward_only() -> None:
    wrong = []
    for module, path in MODULES.items():
        mine = _part(module)
        for target, line in _imports(path):
            if not target.startswith("dyntools"):
                continue
            theirs = _part(target)
            if theirs != mine and LAYERS[theirs] >= LAYERS[mine]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} -> {target}")
    assert not wrong, "imports against the layer rule:\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = {
        module: sorted({t for t, _ in _imports(path) if t in MODULES and t != module})
        for module, path in MODULES.items()
    }
    cycles = [component for component in _components(graph) if len(component) > 1]
    assert not cycles, f"import cycles: {cycles}"


def _components(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_only_the_owner_imports_a_library() -> None:
    wrong = []
    for module, path in MODULES.items():
        for target, line in _imports(path):
            owners = OWNERS.get(target.split(".")[0])
            if owners and not any(module == o or module.startswith(o + ".") for o in owners):
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module} imports {target}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize(
    "page", sorted((PACKAGE / "app" / "page_scripts").glob("*.py")), ids=lambda p: p.name
)
def test_pages_hold_no_sql_torch_or_hmmlearn(page: Path) -> None:
    banned = {"torch", "hmmlearn", "sklearn", "duckdb", "safetensors"}
    used = {target.split(".")[0] for target, _ in _imports(page)}
    assert not used & banned


def test_importing_dyntools_imports_neither_streamlit_nor_hmmlearn() -> None:
    script = (
        "import sys\n"
        "import dyntools, dyntools.checkpoints, dyntools.hookpoints, dyntools.metrics\n"
        "import dyntools.hmm, dyntools.store, dyntools.pipeline, dyntools.views, dyntools.charts\n"
        "print(sorted(m for m in ('streamlit', 'hmmlearn', 'sklearn') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip() == "[]", done.stderr


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    # The check itself can fail: a leaf importing the store is reported.
    leaf = tmp_path / "leaf.py"
    leaf.write_text("from dyntools.store import Store\n", encoding="utf-8")
    ((target, _),) = _imports(leaf)
    assert LAYERS[_part(target)] > LAYERS[_part("dyntools.metrics.weights")]
    assert _components({"a": ["b"], "b": ["a"], "c": []}) == [["a", "b"], ["c"]]


def _section(text: str, heading: str) -> str:
    """The body of a ``## heading`` section of a markdown page, up to the next ``## ``."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"{DOC.name} has no section '## {heading}'"
    return match.group(1)


def _tables(text: str) -> dict[str, list[list[str]]]:
    """The markdown tables of ``text`` by their first header cell: each row's cells."""
    tables: dict[str, list[list[str]]] = {}
    rows: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
            continue
        if rows:
            # rows[1] is the |---| separator line.
            tables[rows[0][0]] = rows[2:]
            rows = []
    return tables


def _code(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def documented_layers(text: str) -> dict[str, int]:
    """The layer table of docs/architecture.md, "Layers", as ``LAYERS`` spells it."""
    found: dict[str, int] = {}
    for layer, parts, may_import in _tables(_section(text, "Layers"))["layer"]:
        number = int(layer.split()[0])
        expected = {0: "nothing of dyntools", 1: "layer 0"}.get(number, f"layers 0-{number - 1}")
        assert may_import == expected, f"layer {number}: '{may_import}', not '{expected}'"
        for part in _code(parts):
            assert part not in found, f"{part} is in two rows of the layer table"
            found[part] = number
    return found


def documented_owners(text: str) -> dict[str, tuple[str, ...]]:
    """The owners' table of docs/architecture.md, "Layers", as ``OWNERS`` spells it."""
    return {
        _code(library)[0]: tuple(_code(owners))
        for library, owners in _tables(_section(text, "Layers"))["library"]
    }


def test_the_docs_state_the_layers_and_owners_this_test_enforces() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert documented_layers(text) == LAYERS
    assert documented_owners(text) == OWNERS


def test_the_docs_check_fails_on_a_drifted_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    moved = text.replace(
        "| 4 | `dyntools.pipeline` |", "| 4 | `dyntools.pipeline`, `dyntools.text` |"
    )
    assert moved != text
    with pytest.raises(AssertionError, match="two rows"):
        documented_layers(moved)
    dropped = text.replace("| `ray` (", "| `ray_gone` (")
    assert dropped != text and documented_owners(dropped) != OWNERS


def test_every_concept_lives_where_the_docs_say() -> None:
    """Each row of "Where each concept lives": its files exist, and each name it gives is in one
    of them (a renamed or moved name fails here)."""
    rows = _tables(_section(DOC.read_text(encoding="utf-8"), "Where each concept lives"))
    wrong = []
    for concept, names, where in rows["concept"]:
        paths: list[Path] = []
        for cited in _code(where):
            # A bare file name is beside the file named before it: `pipeline/jobs.py`, `plan.py`.
            path = ROOT / cited if "/" in cited else paths[-1].parent / cited
            if not path.exists():
                wrong.append(f"{concept}: {cited} does not exist")
            paths.append(path)
        files = [f for p in paths for f in (sorted(p.rglob("*.py")) if p.is_dir() else [p])]
        files = [f for f in files if f.is_file()]
        # In a folder, a name may also be a module's: `frames` (dyntools/views/latent_states/).
        modules = " ".join(
            part for f in files for part in f.relative_to(ROOT).with_suffix("").parts
        )
        text = "\n".join([modules, *(f.read_text(encoding="utf-8") for f in files)])
        for name in _code(names):
            word = name.split("(")[0].split(".")[-1]
            if word.isidentifier() and not re.search(rf"\b{re.escape(word)}\b", text):
                wrong.append(f"{concept}: {name} is not in {', '.join(_code(where))}")
    assert not wrong, "\n".join(wrong)
