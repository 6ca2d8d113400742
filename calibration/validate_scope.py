"""Which of a profile's fits the back-test's headline counts: the ones a plan's figures are computed from.

The simulator reads a profile's fits in one place, `simulator.device_profile.device_from_profile` (the device it
plans on: GEMM throughput and its efficiency curve, the all-reduce link, the all-to-all share, the MoE layer, decode
bandwidth, step overhead, the elementwise rate, and each of their spreads). A fit feeds a figure when changing its
parameters changes that device; `used_fits` asks exactly that, one fit at a time, so the answer follows the
simulator's code instead of a list of names kept beside it. Fits that feed no figure (a lone rank's collectives, the
collectives and world sizes the device does not read, DDP, the parameter server, quantization and pruning ratios, a
dtype the device does not plan in) are re-measured and shown apart, out of the headline.

A dtype the probe marked emulated (`environment.emulated`: below 1/8 of fp32's throughput, calibration/probe.py) is
shown apart too, whether or not the device reads it: its timings measure the emulation, and a plan in that dtype on
this machine is flagged slow before any error matters.
"""

from __future__ import annotations

from typing import Any

from calibration.probe import EMULATED_RATIO
from simulator.device_profile import device_from_profile

HEADLINE, EMULATED, UNUSED = "headline", "emulated", "unused"
SECTION_TITLES = {HEADLINE: "used by the simulator's plans",
                  EMULATED: "an emulated dtype",
                  UNUSED: "feeds no simulator figure"}
# a fit's parameters are scaled by this to see whether the device moves: well above a least-squares solver's
# tolerance (the efficiency curve is fitted through a GEMM fit, simulator/device_curve.py), small enough that a
# fitted bandwidth rarely crosses the memory's, past which the device stops using it (simulator/device_serving.py)
PROBE_SCALE = 1.01
_DEVICE_ERRORS = (ValueError, TypeError, KeyError, ArithmeticError)


def _scaled(node: dict[str, Any], keys: tuple[str, ...], scale: float) -> dict[str, Any]:
    """A copy of `node` that shares all but the path to `keys`, where the fit's numeric params are times `scale`."""
    if keys:
        return {**node, keys[0]: _scaled(node[keys[0]], keys[1:], scale)}
    params = {k: v * scale if isinstance(v, int | float) and not isinstance(v, bool) else v
              for k, v in node["params"].items()}
    return {**node, "params": params}


def used_fits(profile: dict[str, Any], fit_keys: list[tuple[str, ...]]) -> tuple[set[tuple[str, ...]] | None, str]:
    """(the keys under profile["fits"] of those of `fit_keys` whose parameters move the simulator's device, a
    sentence saying how that was found); None when it cannot be told (the device cannot be built from this
    profile, or building it twice does not give the same device): then every fit counts, and the sentence says why."""
    try:
        base = device_from_profile(profile)
        again = device_from_profile(profile)
    except _DEVICE_ERRORS as exc:
        return None, f"every fit counts: the simulator builds no device from this profile ({exc})"
    if base != again:
        return None, "every fit counts: the simulator's device from this profile differs between two builds"
    used = set()
    for keys in fit_keys:
        try:
            moved = device_from_profile(_scaled(profile, ("fits", *keys), PROBE_SCALE)) != base
        except _DEVICE_ERRORS:
            moved = True  # the device depends on this fit enough to break without it
        if moved:
            used.add(keys)
    return used, (f"a fit counts when scaling its parameters by {PROBE_SCALE:g} changes the device the simulator "
                  "plans on (simulator.device_profile.device_from_profile)")


def emulated_reason(profile: dict[str, Any], device: str, dtype: str) -> str | None:
    """Why `dtype` on `device` is emulated, from the probe's marks (environment.emulated, a list of dtypes over all
    devices) and its figures (environment.probe, "<device>.<dtype>.gflops"); None when it is not. The figures
    decide per device where they are stored: a dtype emulated on the CPU is not thereby emulated on a GPU."""
    env = profile.get("environment") or {}
    marked = env.get("emulated") if isinstance(env.get("emulated"), list) else []
    if dtype not in marked:
        return None
    probe = env.get("probe") if isinstance(env.get("probe"), dict) else {}
    gflops, ref = probe.get(f"{device}.{dtype}.gflops"), probe.get(f"{device}.fp32.gflops")
    if isinstance(gflops, int | float) and isinstance(ref, int | float) and ref > 0:
        if gflops >= EMULATED_RATIO * ref:
            return None
        return (f"{dtype} is emulated on this {device} (probe: {gflops:g} GFLOP/s against {ref:g} in fp32, below "
                f"1/{round(1 / EMULATED_RATIO)}): its timings measure the emulation")
    return f"{dtype} is emulated on this machine (the probe marked it; no {device} figures stored)"


def _emulated_rows(profile: dict[str, Any], indices: list[int]) -> str | None:
    """Why the first of these measurement rows in an emulated dtype is so; None when none is."""
    rows = profile.get("measurements") or []
    for i in indices:
        row = rows[i] if 0 <= i < len(rows) else None
        why = emulated_reason(profile, str(row.get("device")), str(row.get("dtype"))) if isinstance(row, dict) else None
        if why:
            return why
    return None


def classify(profile: dict[str, Any], targets: list[dict[str, Any]]) -> tuple[dict[str, tuple[str, str | None]], str]:
    """({fit path: (section, why not in the headline)} for the fits of `targets` (validate_points.heldout_targets),
    how the used fits were found). The section is EMULATED where a held-out row is in an emulated dtype, UNUSED
    where the fit is a lone rank's collective or feeds no simulator figure, else HEADLINE."""
    fits = {t["fit"]: t for t in targets}
    used, how = used_fits(profile, sorted({t["keys"] for t in fits.values()}))
    out: dict[str, tuple[str, str | None]] = {}
    for path, t in fits.items():
        feeds = used is None or t["keys"] in used
        emulated = _emulated_rows(profile, t["rows"])
        if emulated:
            out[path] = (EMULATED, f"{emulated}; {'feeds' if feeds else 'feeds no'} simulator figure")
        elif t["keys"][0] == "collectives" and t["keys"][-2:] == ("by_world", "1"):
            out[path] = (UNUSED, "a lone rank (world size 1): no communication, a local copy; the simulator reads "
                                 "collectives above one rank only")
        elif not feeds:
            out[path] = (UNUSED, "feeds no simulator figure: scaling its parameters leaves the simulator's device "
                                 "unchanged")
        else:
            out[path] = (HEADLINE, None)
    return out, how
