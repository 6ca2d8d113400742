"""Calibration: measure this machine (GEMMs, transformer blocks, collectives, DDP, inference,
pruning), write raw rows, and fit a profile the simulator reads.

    python -m calibration run --quick --out runs/here
    python -m calibration validate runs/here/profile.json

Importing the package is cheap: torch is imported only by the modules that measure.
"""
