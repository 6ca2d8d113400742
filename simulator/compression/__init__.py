"""Compression (quantization and pruning): model bytes, speed-ups on an accelerator, and the loss increase.

Pure numpy/scipy helpers of the `compression` family (simulator/families/compression.py) and of the quality
family's compressed loss (simulator/families/quality.py). The model is explained in docs/compression.md.
"""
