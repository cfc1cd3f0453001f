"""The compute pipeline: discover x select x metrics -> store, in parallel, with progress."""

from dyntools.pipeline.compute import ComputeSummary, Failure, compute
from dyntools.pipeline.options import ComputeOptions, parse_patterns

__all__ = ["ComputeOptions", "ComputeSummary", "Failure", "compute", "parse_patterns"]
