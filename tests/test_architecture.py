"""The layer rule of docs/architecture.md, checked on every module's imports (parsed, not run):
no import cycles, imports flow downward only, streamlit only in the app layer, hmmlearn only in
its backend, and importing dyntools imports neither."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dyntools"

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
