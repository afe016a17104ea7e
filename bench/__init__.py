"""Benchmarks of the real bot process against the fake Bot API and fake GLM servers.

Run with ``python -m bench`` (``make bench``); see bench/README.md for the method and
the latest figures.
"""
