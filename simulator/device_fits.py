"""Reading a calibration profile's fits: the usable ones a device is built from, and the spread each claims."""

from __future__ import annotations

import math
from typing import Any

from simulator.profile import collective_fit

# one sigma for numbers neither a datasheet nor the calibration gives (a CPU's memory bandwidth, its network):
# a placeholder, wide on purpose
GUESSED_SPREAD = 0.5
# the widest spread a fit may claim: the evaluator's P10 row scales a column by 1 - 1.2816 x spread, which reaches
# zero (an infinite time: the plan then loses its P10-P90 band) at 0.78; a wider fitted spread (a held-out error of
# 80% or more) says "very uncertain", not "possibly zero"
MAX_SPREAD = 0.75


def finite_positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def gemm_fits(profile: dict[str, Any], device: str) -> dict[str, dict[str, Any]]:
    """Usable GEMM fits of `device` by dtype, from fits.compute.gemm["<device>/<dtype>"]."""
    out: dict[str, dict[str, Any]] = {}
    for key, fit in profile.get("fits", {}).get("compute", {}).get("gemm", {}).items():
        dev, _, dtype = key.partition("/")
        if dev == device and isinstance(fit, dict) and fit.get("status") == "ok":
            out[dtype] = fit
    return out


def largest_allreduce(profile: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """(world size, fit) of the all-reduce fit of the largest world above 1 that has a bus bandwidth, or None."""
    worlds = profile.get("fits", {}).get("collectives", {}).get("all_reduce", {}).get("by_world", {})
    for world in sorted((int(w) for w in worlds), reverse=True):
        fit = collective_fit(profile, "all_reduce", world)
        if world > 1 and fit and "busbw_GBps" in fit["params"]:
            return world, fit
    return None


def usable_fits(profile: dict[str, Any], kind: str, device: str, section: str = "inference"
                ) -> list[tuple[str, dict[str, Any]]]:
    """Usable fits of fits.<section>.<kind> on `device`, bf16 first (the serving dtype), then the rest."""
    fits = profile.get("fits", {}).get(section, {}).get(kind, {})
    ok = [(key, fit) for key, fit in fits.items() if key.partition("/")[0] == device and isinstance(fit, dict)
          and fit.get("status") == "ok" and isinstance(fit.get("params"), dict)]
    return sorted(ok, key=lambda item: "/bf16/" not in f"{item[0]}/")


def fit_spread(fit: dict[str, Any], param: str, value: float | None = None) -> float | None:
    """Relative one-sigma uncertainty of one fitted parameter: its standard error over its value (or over `value`,
    a field that differs from the param by a constant), or the fit's held-out error where that is larger (a fit can
    be precise about the wrong curve), at most MAX_SPREAD; None: neither is known."""
    value = fit.get("params", {}).get(param) if value is None else value
    se = (fit.get("stderr") or {}).get(param)
    candidates = []
    if finite_positive(value) and finite_positive(se):  # a standard error of exactly 0 is not a certainty
        candidates.append(se / value)
    if finite_positive(fit.get("mape_heldout_pct")):
        candidates.append(fit["mape_heldout_pct"] / 100.0)
    return min(max(candidates), MAX_SPREAD) if candidates else None


def a2a_efficiency(profile: dict[str, Any]) -> tuple[int, float, float | None, dict[str, Any], dict[str, Any]] | None:
    """(world size, a2a_eff, its spread, the all_to_all fit, the all_reduce fit): the all-to-all fit's bus bandwidth
    over the all-reduce fit's at the largest world size above 1 where both have one (fits leave oversubscribed rows
    out, so that world was not oversubscribed); None where none does. The spread adds the two fits' relative spreads
    in quadrature (a ratio of independent estimates, first order), at most MAX_SPREAD."""
    worlds = profile.get("fits", {}).get("collectives", {}).get("all_to_all", {}).get("by_world", {})
    for world in sorted((int(w) for w in worlds), reverse=True):
        a2a, ar = collective_fit(profile, "all_to_all", world), collective_fit(profile, "all_reduce", world)
        if world > 1 and a2a and ar and "busbw_GBps" in a2a["params"] and "busbw_GBps" in ar["params"]:
            parts = [s for s in (fit_spread(a2a, "busbw_GBps"), fit_spread(ar, "busbw_GBps")) if s is not None]
            spread = min(math.sqrt(sum(s * s for s in parts)), MAX_SPREAD) if parts else None
            return world, a2a["params"]["busbw_GBps"] / ar["params"]["busbw_GBps"], spread, a2a, ar
    return None


def moe_fit(profile: dict[str, Any], device: str, dtypes: tuple[str, ...]) -> tuple[str, dict[str, Any]] | None:
    """(dtype, fit) of the MoE layer fit (fits.compute.moe_layer) of `device` in the first of `dtypes` fitted, else of
    any dtype fitted; None where the profile has none."""
    fits: dict[str, dict[str, Any]] = {}
    for key, fit in profile.get("fits", {}).get("compute", {}).get("moe_layer", {}).items():
        dev, _, dtype = key.partition("/")
        if dev == device and isinstance(fit, dict) and fit.get("status") == "ok":
            fits[dtype] = fit
    dtype = next((d for d in (*dtypes, *sorted(fits)) if d in fits), None)
    return None if dtype is None else (dtype, fits[dtype])
