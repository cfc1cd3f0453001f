"""HSIC against a direct numpy implementation and against PyGlow 0.1.7's estimator."""

from __future__ import annotations

import importlib
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from dyntools.metrics import hsic as hsic_module
from dyntools.metrics.hsic import (
    InformationPlane,
    code_distances,
    probabilities,
    pyglow_hsic,
    resolve_coding,
    resolved_params,
    squared_distances,
)
from dyntools.metrics.hsic_inputs import Coding
from dyntools.metrics.records import ReasonCode
from dyntools.metrics.registry import variant_metrics

REL_TOL = 1e-5


def _numpy_kernel(a: np.ndarray, sigma2: float) -> np.ndarray:
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    diff = a[:, None, :] - a[None, :, :]  # the direct m x m x d way, fine for tiny inputs
    return np.exp(-(diff**2).sum(-1) / (2 * sigma2))


def _numpy_hsic(k: np.ndarray, l_: np.ndarray) -> float:
    m = k.shape[0]
    c = np.eye(m) - np.ones((m, m)) / m
    return float(np.trace(k @ c @ l_ @ c))


def _numpy_median_sigma2(a: np.ndarray) -> float:
    a = a.reshape(a.shape[0], -1).astype(np.float64)
    d = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
    pairs = np.sort(d[np.triu_indices(a.shape[0], 1)])
    return float(pairs[(pairs.size - 1) // 2])  # lower median, as torch.median


def _pyglow_estimator() -> ModuleType:
    """glow.information_bottleneck.estimator without running glow/__init__.py.

    PyGlow's package __init__ imports its training code (tqdm, matplotlib, ...), which the
    no-deps test install lacks; the estimator itself needs only torch. A stand-in ``glow``
    package whose __path__ is the installed folder lets the submodules import normally.
    """
    if "glow" not in sys.modules:
        spec = importlib.util.find_spec("glow")
        assert spec is not None and spec.submodule_search_locations, "PyGlow is not installed"
        # A module made from the spec but not executed: submodules resolve through its __path__.
        sys.modules["glow"] = importlib.util.module_from_spec(spec)
    return importlib.import_module("glow.information_bottleneck.estimator")


def _data(m: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, 3, 4, generator=g)
    labels = torch.randint(0, 5, (m,), generator=g)
    h = torch.relu(x.reshape(m, -1) @ torch.randn(12, 16, generator=g)) + 0.1 * labels[:, None]
    return x, labels, h


def test_normalized_hsic_matches_numpy_reference() -> None:
    x, labels, h = _data()
    plane = InformationPlane(x, labels)
    point = plane.hsic(h)
    kx = _numpy_kernel(x.numpy(), _numpy_median_sigma2(x.numpy()))
    yy = np.eye(5)[labels.numpy()]
    ky = _numpy_kernel(yy, _numpy_median_sigma2(yy))
    kh = _numpy_kernel(h.numpy(), _numpy_median_sigma2(h.numpy()))
    for ours, kref in ((point.hsic_x, kx), (point.hsic_y, ky)):
        expected = _numpy_hsic(kh, kref) / np.sqrt(_numpy_hsic(kh, kh) * _numpy_hsic(kref, kref))
        assert ours is not None
        assert abs(ours - expected) <= REL_TOL * abs(expected)
    assert 0 < point.hsic_x < 1 and 0 < point.hsic_y < 1  # type: ignore[operator]


def test_dimension_scaled_sigma_matches_numpy_reference() -> None:
    x, labels, h = _data(seed=1)
    point = InformationPlane(x, labels, sigma=0.5).hsic(h)
    kh = _numpy_kernel(h.numpy(), 0.25 * 16)
    kx = _numpy_kernel(x.numpy(), 0.25 * 12)
    expected = _numpy_hsic(kh, kx) / np.sqrt(_numpy_hsic(kh, kh) * _numpy_hsic(kx, kx))
    assert point.hsic_x is not None and abs(point.hsic_x - expected) <= REL_TOL * expected


# PyGlow works in float32: for inputs much narrower than sigma its kernel is 1 - tiny and its
# centring loses digits (rel. error 1e-5 at scale 0.05), so that regime is checked against the
# float64 numpy reference below instead.
@pytest.mark.parametrize("scale", [1.0, 3.0, 20.0], ids=["moderate", "wide", "saturated"])
def test_pyglow_variant_matches_pyglow_estimator(scale: float) -> None:
    estimator = _pyglow_estimator()
    x, _, h = _data(m=64, seed=2)
    x, h = scale * x, scale * h
    output = torch.randn(64, 5, generator=torch.Generator().manual_seed(3))
    reference = estimator.HSIC("gaussian", gpu=False, sigma=5)
    plane = InformationPlane(x, output, variant="pyglow")
    point = plane.hsic(h)
    for ours, other in ((point.hsic_x, x), (point.hsic_y, output)):
        expected = float(reference.criterion(h.reshape(64, -1), other.reshape(64, -1)))
        assert ours is not None
        assert abs(ours - expected) <= REL_TOL * abs(expected), (ours, expected)
    assert variant_metrics(plane.variant) == ("hsic_x_pyglow", "hsic_y_pyglow")
    expected_x = float(reference.criterion(h.reshape(64, -1), x.reshape(64, -1)))
    assert abs(pyglow_hsic(h, x) - expected_x) <= REL_TOL * abs(expected_x)


def test_pyglow_variant_matches_numpy_for_narrow_inputs() -> None:
    x, _, h = _data(m=64, seed=2)
    x, h = 0.05 * x, 0.05 * h
    expected = _numpy_hsic(_numpy_kernel(h.numpy(), 25.0), _numpy_kernel(x.numpy(), 25.0)) / 63
    assert abs(pyglow_hsic(h, x) - expected) <= 1e-9 * abs(expected)


def test_squared_distances_survive_a_large_offset_and_column_blocks(monkeypatch) -> None:
    g = torch.Generator().manual_seed(4)
    a = torch.randn(20, 50, generator=g, dtype=torch.float64) + 1000.0
    direct = ((a[:, None, :] - a[None, :, :]) ** 2).sum(-1)
    monkeypatch.setattr(hsic_module, "GRAM_BLOCK_BYTES", 8 * 20 * 7)  # 7 columns per block
    assert torch.allclose(squared_distances(a), direct, rtol=1e-9, atol=1e-9)


def test_kernels_of_x_and_y_are_built_once_per_plane(monkeypatch) -> None:
    x, labels, h = _data()
    calls: list[str] = []
    for name in ("squared_distances", "code_distances"):
        original = getattr(hsic_module, name)

        def counting(samples: torch.Tensor, _name=name, _original=original) -> torch.Tensor:
            calls.append(_name)
            return _original(samples)

        monkeypatch.setattr(hsic_module, name, counting)
    plane = InformationPlane(x, labels)
    assert calls == ["squared_distances", "code_distances"]  # X values, Y label codes
    for _ in range(3):
        plane.hsic(h)
    assert calls[2:] == ["squared_distances"] * 3  # one per layer output, X and Y reused


def test_degenerate_inputs_give_reasons_not_crashes() -> None:
    x, labels, h = _data()
    plane = InformationPlane(x, labels)
    constant = plane.hsic(torch.ones_like(h))
    assert constant.hsic_x is None and constant.reason is not None
    assert "same for every probe sample" in constant.reason.message
    assert constant.reason.code is ReasonCode.UNDEFINED
    broken = h.clone()
    broken[0, 0] = float("nan")
    nan_point = plane.hsic(broken)
    assert nan_point.hsic_x is None and nan_point.reason is not None
    assert nan_point.reason.code is ReasonCode.NONFINITE and "NaN" in nan_point.reason.message
    with pytest.raises(ValueError, match="samples"):
        plane.hsic(h[:10])
    with pytest.raises(ValueError, match="unknown HSIC variant"):
        InformationPlane(x, labels, variant="biased")


def _numpy_one_hot(codes: np.ndarray) -> np.ndarray:
    """Explicit one-hot per position, concatenated: the construction code_distances avoids."""
    flat = codes.reshape(codes.shape[0], -1)
    return np.concatenate([np.eye(int(c.max()) + 1)[c] for c in flat.T], axis=1)


def test_integer_inputs_are_one_hot_codes_not_coordinates() -> None:
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, 97, (48, 2), generator=g)  # modular addition: (a, b) token ids
    labels = (tokens[:, 0] + tokens[:, 1]) % 97
    h = torch.randn(48, 2, 8, generator=g) + torch.nn.functional.one_hot(tokens, 97)[..., :8]
    codes = _numpy_one_hot(tokens.numpy())
    assert torch.equal(
        code_distances(tokens), torch.from_numpy(((codes[:, None] - codes[None]) ** 2).sum(-1))
    )
    point = InformationPlane(tokens, labels).hsic(h)
    kh = _numpy_kernel(h.numpy(), _numpy_median_sigma2(h.numpy()))
    yy = _numpy_one_hot(labels.numpy())
    for ours, ref in ((point.hsic_x, codes), (point.hsic_y, yy)):
        kref = _numpy_kernel(ref, _numpy_median_sigma2(ref))
        expected = _numpy_hsic(kh, kref) / np.sqrt(_numpy_hsic(kh, kh) * _numpy_hsic(kref, kref))
        assert ours is not None and abs(ours - expected) <= REL_TOL * abs(expected)
    # The integers as coordinates (token 96 "far" from token 0) are another number.
    raw = InformationPlane(tokens, labels, x_coding=Coding.VALUES).hsic(h)
    assert raw.hsic_x is not None and abs(raw.hsic_x - point.hsic_x) > 1e-3  # type: ignore[operator]


def test_codes_of_several_positions_and_blocks(monkeypatch) -> None:
    g = torch.Generator().manual_seed(6)
    codes = torch.randint(0, 5, (12, 3, 4), generator=g)
    monkeypatch.setattr(hsic_module, "CODE_BLOCK_ELEMENTS", 12 * 12 * 5)  # 5 positions a block
    expected = 2.0 * (codes.reshape(12, 1, -1) != codes.reshape(1, 12, -1)).sum(-1)
    assert torch.equal(code_distances(codes), expected.to(torch.float64))


def test_codings_resolve_from_the_probe() -> None:
    ints, reals = torch.tensor([1, 0, 2]), torch.tensor([0.5, -1.0, 2.0])
    assert resolve_coding("auto", ints, "inputs") is Coding.ONE_HOT
    assert resolve_coding("auto", reals, "inputs") is Coding.VALUES
    assert resolve_coding("values", ints, "inputs") is Coding.VALUES
    with pytest.raises(ValueError, match=r"real values.*not integer codes"):
        resolve_coding("one-hot", reals, "inputs")
    params = {"inputs": "auto", "labels": "auto", "output": "softmax"}
    assert resolved_params(params, reals, ints) == {
        "inputs": "values",
        "labels": "one-hot",
        "output": "softmax",
    }


def test_pyglow_output_is_the_softmax() -> None:
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]])
    expected = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(-1, keepdims=True)
    assert np.allclose(probabilities(logits).numpy(), expected)
    one = torch.tensor([[0.0], [2.0]])
    assert np.allclose(probabilities(one).numpy(), 1 / (1 + np.exp(-one.numpy())))
    # PyGlow's estimator on the softmax output agrees with the pyglow plane given the same Y.
    estimator = _pyglow_estimator()
    x, _, h = _data(m=64, seed=2)
    output = probabilities(torch.randn(64, 5, generator=torch.Generator().manual_seed(3)))
    point = InformationPlane(x, output, variant="pyglow").hsic(h)
    reference = estimator.HSIC("gaussian", gpu=False, sigma=5)
    expected_y = float(reference.criterion(h.reshape(64, -1), output.float()))
    assert point.hsic_y is not None and abs(point.hsic_y - expected_y) <= REL_TOL * expected_y


def test_memory_stays_quadratic_in_samples(tmp_path: Path) -> None:
    # m x m x d would be 64 * 64 * 300k * 4 bytes = 4.9 GB; the Gram way needs the input
    # (77 MB) plus 4 MB float64 blocks and a few 64 x 64 matrices.
    script = textwrap.dedent(
        """
        import re, torch
        from dyntools.metrics.hsic import InformationPlane
        def hwm():
            text = open("/proc/self/status").read()
            return int(re.search(r"VmHWM:\\s+(\\d+)", text).group(1)) * 1024
        torch.set_num_threads(1)
        h = torch.randn(64, 300_000)
        x = torch.randn(64, 10)
        plane = InformationPlane(x, torch.arange(64) % 3)
        base = hwm()
        plane.hsic(h)
        print(hwm() - base)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    growth = int(done.stdout.strip())
    assert growth < 64 * 2**20, f"HSIC grew the peak memory by {growth / 2**20:.0f} MiB"
