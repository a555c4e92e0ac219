"""Benchmarks: speed and convergence, measured and reported, never asserted in tests."""
