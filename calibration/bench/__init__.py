"""Microbenchmarks.  Each bench function takes a `Step` and a `TimingConfig` and returns a
`Measurement`; `registry.execute` turns that into a row (or a failed / skipped row)."""
