"""The app's first render on a fresh server stays cheap: importing dyntools.ui and every page's
dyntools imports, and discovering a folder of safetensors runs, import neither torch (about
1.3 s) nor hmmlearn/scikit-learn (about 1.5 s). Pages that compute or fit import them when they
do."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "hmmlearn", "sklearn")


def _page_imports() -> list[str]:
    lines = []
    for page in sorted((ROOT / "pages").glob("*.py")):
        for node in ast.parse(page.read_text()).body:
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dyntools"):
                names = ", ".join(alias.name for alias in node.names)
                lines.append(f"from {node.module} import {names}")
    return lines


def test_pages_and_discovery_do_not_import_torch_or_hmmlearn() -> None:
    script = "\n".join(
        [
            "import sys",
            "import streamlit",
            "from dyntools import ui",
            *_page_imports(),
            "from dyntools.checkpoints import discover_runs",
            f"found = discover_runs({str(ROOT / 'sample_runs')!r})",
            "assert found.runs, 'sample runs expected'",
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))",
        ]
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout + done.stderr


def test_the_lazy_names_still_resolve() -> None:
    # The packages that load names on first use give the real objects, for every name they list.
    from dyntools import checkpoints, hmm, metrics, pipeline
    from dyntools.checkpoints.writer import CheckpointWriter
    from dyntools.metrics.weights import compute_weight_metrics
    from dyntools.pipeline.runner import compute

    assert checkpoints.CheckpointWriter is CheckpointWriter
    assert metrics.compute_weight_metrics is compute_weight_metrics
    assert pipeline.compute is compute
    for package in (checkpoints, hmm, metrics, pipeline):
        for name in package.__all__:
            assert getattr(package, name) is not None, f"{package.__name__}.{name}"
