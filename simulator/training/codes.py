"""The training recipe's choices, each named once: the inputs offer these names (families/training_inputs.py) and a
model column carries a choice as its position in its tuple, so a code here is that position, never a number
written by hand."""

from __future__ import annotations

RECOMPUTE = ("none", "selective", "full")
SYNC_METHODS = ("ring", "tree", "ps", "async")
SHARDING = ("random", "sequential")

RECOMPUTE_NONE, RECOMPUTE_SELECTIVE, RECOMPUTE_FULL = (RECOMPUTE.index(n) for n in ("none", "selective", "full"))
SYNC_RING, SYNC_TREE, SYNC_PS, SYNC_ASYNC = (SYNC_METHODS.index(n) for n in ("ring", "tree", "ps", "async"))
SHARDING_RANDOM, SHARDING_SEQUENTIAL = (SHARDING.index(n) for n in ("random", "sequential"))
