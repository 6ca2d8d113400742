"""Benchmarks: fidelity against published figures, sweep speed, and the Train page's rerun time."""
