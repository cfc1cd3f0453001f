"""Benchmarks (``make bench``): dyntools side by side with the published peer, in one run.

Each ``bench/bench_*.py`` module defines ``run() -> list[Row]``; ``python -m bench`` runs them
all (or those named on the command line) and prints one table. Benchmarks are not tests: they
assert nothing about time.
"""
