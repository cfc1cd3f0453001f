"""The compute pipeline: discover x select x metrics -> store, in parallel, with progress.

``compute`` imports torch; it is loaded on first use, so that reading fits back from the store
(``dyntools.pipeline.fits``, the app's pages) does not.
"""

from typing import TYPE_CHECKING

from dyntools.lazy import lazy_exports
from dyntools.pipeline.options import ComputeOptions, parse_patterns

if TYPE_CHECKING:  # the real imports, for type checkers only
    from dyntools.pipeline.runner import ComputeSummary, Failure, compute

__all__ = ["ComputeOptions", "ComputeSummary", "Failure", "compute", "parse_patterns"]

__getattr__ = lazy_exports(
    __name__, {"ComputeSummary": "runner", "Failure": "runner", "compute": "runner"}
)
