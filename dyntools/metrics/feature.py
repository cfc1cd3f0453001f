"""``Feature``: one stored metric series an HMM can be fitted on, and its one text form.

A feature is one metric of one hook point (``blocks.0.attn/l2``), or of the whole network
(``l2``: the mean over every selected matrix, or a pooled statistic such as ``mean_w``), with the
metric's parameters when it has any (``relu1/dead_fraction@{"threshold":1e-06}``). The text form
is what the CLI takes, the URL carries and the fit's columns are called; ``parse`` and
``format`` are the only code that reads or writes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from dyntools.metrics.records import Scope

# [hook point/]metric[@params]: metric names are snake_case, parameters canonical JSON.
_TEXT: Final = re.compile(r"(?:(?P<hook>.+)/)?(?P<metric>[a-z][a-z0-9_]*)(?:@(?P<params>\{.*\}))?")


@dataclass(frozen=True, order=True)
class Feature:
    """A metric of a hook point (or, with ``hook_point`` '', of the whole network)."""

    hook_point: str
    metric: str
    params: str = ""

    @property
    def scope(self) -> Scope:
        return Scope.HOOK_POINT if self.hook_point else Scope.NETWORK

    def format(self) -> str:
        """The text form: ``hook/metric``, ``metric`` for the network, ``@params`` appended."""
        text = f"{self.hook_point}/{self.metric}" if self.hook_point else self.metric
        return f"{text}@{self.params}" if self.params else text

    @classmethod
    def parse(cls, text: str) -> Feature:
        """The feature written as ``format`` writes it; anything else is a ValueError."""
        match = _TEXT.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"feature {text!r} is not HOOK/METRIC (or METRIC for the whole network): "
                "write e.g. blocks.0.attn/l2, or l2"
            )
        return cls(match["hook"] or "", match["metric"], match["params"] or "")

    def __str__(self) -> str:
        return self.format()
