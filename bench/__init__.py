"""The benchmark suite of issue 4: `python -m bench` prints each figure beside its baseline.

Everything is measured in one run on one machine, because absolute times drift on shared
machines and ratios do not. See docs/benchmarks.md for a recorded run.
"""
