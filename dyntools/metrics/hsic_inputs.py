"""What the information plane's kernels are given, by name: the two HSIC variants, how the probe's
inputs and labels enter a kernel (``Coding``), and what of the model's output PyGlow's Y is.

Names only, without torch: the registry and the app read them; ``hsic`` computes with them.
"""

from __future__ import annotations

from enum import StrEnum

# The default variant's kernels (normalized HSIC, median heuristic) and PyGlow's.
NORMALIZED = "normalized"
PYGLOW = "pyglow"
VARIANTS = (NORMALIZED, PYGLOW)


class Coding(StrEnum):
    """How a probe tensor enters a Gaussian kernel."""

    ONE_HOT = "one-hot"  # integer codes (token ids, class indices): one-hot per position
    VALUES = "values"  # real coordinates


# A coding parameter's default, resolved per run when a compute is planned
# (``hsic.resolved_params``), so the stored parameters say what each value used.
AUTO_CODING = "auto"
CODINGS = (AUTO_CODING, *(coding.value for coding in Coding))

# PyGlow's networks end in a softmax: its Y is the model's output probabilities.
SOFTMAX = "softmax"
LOGITS = "logits"
OUTPUT_CHOICES = (SOFTMAX, LOGITS)
