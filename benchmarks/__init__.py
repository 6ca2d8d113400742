"""Benchmarks: fidelity against published figures and sweep speed."""
