"""Names of a package loaded on first use (PEP 562), so that importing the package stays cheap.

Several packages re-export names from modules that import torch (about 1.3 s) or hmmlearn, while
code that never touches a tensor or a model (the app's pages, ``dyntools runs``) imports the
same packages for their light names. This module imports nothing of dyntools.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``package.<exports[name]>`` when ``name`` is used.

    The value is then stored on the package, so later lookups do not come back here.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__
