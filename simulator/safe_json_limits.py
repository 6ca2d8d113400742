"""The caps on untrusted JSON (scenarios, grids, calibration profiles, uploads), each declared once, here."""

from __future__ import annotations

# A calibration profile: the largest shipped is ~0.5 MB; 100,000 measurements stay under ~15 MB.
MAX_PROFILE_BYTES = 20 * 1024 * 1024
# A scenario file or string, or a --grid-json object: a few hundred bytes in practice.
MAX_SCENARIO_BYTES = 1024 * 1024
# Deepest [ / { nesting: a scenario needs 2, a grid 2, a profile about 8; json.loads recurses once per level.
MAX_DEPTH = 64
# Longest number literal: float64 needs at most 24 characters; this keeps int() far from Python's 4,300-digit
# limit and a 310-digit integer out of float() (OverflowError).
MAX_NUMBER_CHARS = 40
# Most items in one JSON array: profiles cap measurements at 100,000; a grid's value list is far shorter.
MAX_ARRAY_ITEMS = 1_000_000
# Most keys in one JSON object: the largest shipped object has 30.
MAX_OBJECT_KEYS = 10_000
# Longest string (or key), in bytes of JSON text between its quotes: the largest shipped string is ~700 bytes.
MAX_STRING_BYTES = 1024 * 1024
# How much of an offending value a message shows.
SHOW_CHARS = 60
