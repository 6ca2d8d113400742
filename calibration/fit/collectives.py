"""Collective fits: alpha-beta per (op, world size), t = alpha_s + bytes * c(n) / (busbw_GBps * 1e9),
with c(n) the nccl-tests bus factor (doc/PERFORMANCE.md), plus a flat-then-linear variant
t = max(floor_s, alpha-beta) for transports with a latency floor (gloo all_reduce on CPU is flat to
~1 MB on the development VM); on a CPU whose training sizes pass one core's L2, alpha-beta in two tiers. World size 1 moves nothing across a link (c = 0): a constant call cost, or a call
cost plus a local copy of the buffer (gloo copies input to output for all_gather and reduce_scatter), labelled.

Per op, a `cross_world` fit pools the smaller world sizes (one alpha, one busbw) and is checked on the
largest non-oversubscribed world: the test of whether busbw transfers across world sizes.
Oversubscribed rows (more ranks than cores) are never fitted: they time the scheduler, not the network.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.fit.common import (
    Model,
    Points,
    fit_largest_heldout,
    fit_record,
    insufficient,
    split_largest,
    usable,
)
from simulator.profile import BUS_FACTORS, bus_factor, predict_s

OPS = ("all_reduce", "all_gather", "reduce_scatter", "broadcast", "all_to_all")
FORMULAS = {
    "constant": "t_s = alpha_s (world size 1: nothing crosses a link)",
    "local_copy": "t_s = alpha_s + message_bytes / (copy_GBps * 1e9) (world size 1: a local copy, no link)",
    "local_copy_two_tier": "t_s = alpha_s + message_bytes * ((1 - out) / (cache_GBps * 1e9) + out / (dram_GBps * 1e9)); "
                           "out = 1 / (1 + exp(-4 * (log2(2 * message_bytes) - log2(cache_bytes)))) (input + output "
                           "against the cache share, fitted between one core's L2 and the last-level cache)",
    "alpha_beta": "t_s = alpha_s + message_bytes * c(n) / (busbw_GBps * 1e9)",
    "flat_then_linear": "t_s = max(floor_s, alpha_s + message_bytes * c(n) / (busbw_GBps * 1e9))",
    "alpha_beta_two_tier": "t_s = alpha_s + message_bytes * c(n) * ((1 - out) / (cache_busbw_GBps * 1e9) + out / "
                           "(busbw_GBps * 1e9)); out = 1 / (1 + exp(-4 * (log2(2 * message_bytes) - "
                           "log2(cache_bytes)))) (a rank's buffer and the one it receives against the cache share, "
                           "fitted between one core's L2 and the last-level cache; busbw_GBps: beyond it)",
}


def _models(op: str, x: np.ndarray, t_s: np.ndarray, n: np.ndarray,
            cache: tuple[float, float] | None = None) -> list[Model]:
    """Across a link: alpha-beta, or flat-then-linear, chosen by the selection rule. With `cache` (a CPU whose
    training sizes put at least two buffers beyond one core's L2, see _cache_range), alpha-beta with its bus
    rate in two tiers instead, by physics as for the world-1 copy: on the development VMs gloo's bus rate falls by
    a third to a half beyond the L2 (all_reduce at world 2: ~1.7 GB/s at 2 MiB, ~1.2 at 8 MiB), so a line
    through the in-cache sizes overestimates every larger message (-40% at 8-16 MiB)."""
    c = bus_factor(op, n)
    bw0 = float(np.max(x * c / t_s)) / 1e9
    a0 = float(np.min(t_s))

    def pred(name: str):
        return lambda p, f: predict_s({"model": name, "op": op, "params": p}, **f)

    if cache:
        l2, llc = cache
        mid = float(np.sqrt(l2 * llc))
        return [Model("alpha_beta_two_tier", FORMULAS["alpha_beta_two_tier"],
                      ("alpha_s", "cache_busbw_GBps", "busbw_GBps", "cache_bytes"), pred("alpha_beta_two_tier"),
                      lower=(1e-9, 1e-6, 1e-6, l2), upper=(10.0, 1e5, 1e5, llc), log_params=(True, True, True, True),
                      starts=((a0, bw0, bw0 / 2, l2), (a0 / 2, bw0 * 2, bw0, mid), (a0, bw0, bw0 / 2, mid),
                              (a0, bw0 * 4, bw0 / 4, llc)), ordered=("cache_busbw_GBps", "busbw_GBps"))]
    return [
        Model("alpha_beta", FORMULAS["alpha_beta"], ("alpha_s", "busbw_GBps"), pred("alpha_beta"),
              lower=(1e-9, 1e-6), upper=(10.0, 1e5), log_params=(True, True),
              starts=((a0, bw0), (a0 / 10, bw0 * 2))),
        Model("flat_then_linear", FORMULAS["flat_then_linear"], ("floor_s", "alpha_s", "busbw_GBps"),
              pred("flat_then_linear"), lower=(1e-9, 1e-9, 1e-6), upper=(10.0, 10.0, 1e5),
              log_params=(True, True, True), starts=((a0, a0 / 10, bw0), (a0, a0 / 100, bw0 * 2))),
    ]


COPYING_OPS = ("all_gather", "reduce_scatter", "all_to_all")  # out of place: even one rank copies input to output


def _world1_models(op: str, x: np.ndarray, t_s: np.ndarray, cache: tuple[float, float] | None = None) -> list[Model]:
    """World size 1 moves nothing across a link. all_gather and reduce_scatter are out of place, so even a
    single rank copies input to output (gloo and nccl alike): a call cost plus a local copy; all_reduce and
    broadcast work in place: a constant call cost. (Chosen by the operation, not by cross-validation: the
    small sizes' microsecond noise would otherwise decide between the two.) A copy's rate drops once input
    and output leave the caches (development VMs: ~9 GB/s within them, ~4-6 beyond). With `cache` = (one core's
    L2, the last-level cache) and two training sizes copying at least the L2, the copy is fitted in two tiers
    whose boundary is fitted between those two sizes: a VM's share of a shared last-level cache is not its
    nominal size (not left to the selection rule: its extrapolation test drops the very sizes that pin the
    beyond-cache rate)."""
    if op in COPYING_OPS:
        a0 = float(np.min(t_s))
        c0 = float(np.max(x / t_s)) / 1e9
        if cache:  # the copy crosses the L2 within the training sizes: the tiered form, by physics
            l2, llc = cache
            mid = float(np.sqrt(l2 * llc))
            return [Model(
                "local_copy_two_tier", FORMULAS["local_copy_two_tier"],
                ("alpha_s", "cache_GBps", "dram_GBps", "cache_bytes"),
                lambda p, f: predict_s({"model": "local_copy_two_tier", "params": p}, **f),
                lower=(1e-9, 1e-3, 1e-3, l2), upper=(10.0, 1e5, 1e5, llc), log_params=(True, True, True, True),
                starts=((a0, c0, c0 / 2, l2), (a0 / 2, c0 * 3, c0, mid), (a0, c0, c0 / 2, mid),
                        (a0, c0 * 10, c0 / 4, llc)), ordered=("cache_GBps", "dram_GBps"))]
        return [Model("local_copy", FORMULAS["local_copy"], ("alpha_s", "copy_GBps"),
                      lambda p, f: predict_s({"model": "local_copy", "params": p}, **f),
                      lower=(1e-9, 1e-3), upper=(10.0, 1e5), log_params=(True, True),
                      starts=((a0, c0), (a0 / 2, c0 * 10), (a0, c0 * 100)))]
    return [Model("constant", FORMULAS["constant"], ("alpha_s",),
                  lambda p, f: predict_s({"model": "constant", "params": p}, **f),
                  lower=(1e-9,), upper=(10.0,), log_params=(True,), starts=((float(np.median(t_s)),),))]


def _points(op: str, items: list[tuple[int, dict[str, Any]]]) -> Points:
    x = np.array([float(r.get("bytes") or 0.0) for _, r in items])
    n = np.array([int(r.get("world_size", 1)) for _, r in items])
    t_s = np.array([float(r["median_s"]) for _, r in items])
    algbw = x / t_s / 1e9
    extra = [{"world_size": int(n[j]), "algbw_GBps": float(algbw[j]),
              "busbw_GBps": float(algbw[j] * bus_factor(op, n[j]))} for j in range(len(items))]
    return Points(feats={"message_bytes": x, "world_size": n}, y=t_s, x=x,
                  rows=[[i] for i, _ in items], extra=extra)


def _cache_range(env: dict[str, Any] | None, x_train: np.ndarray) -> tuple[float, float] | None:
    """The range a two-tier fit's cache boundary is fitted in, counting two buffers per message (a copy's input
    and output; a rank's buffer and the one it receives): from one core's L2 to the last-level cache (the L3
    where the environment has one), but no further than the largest training pair, so that a training point
    lies at or beyond any boundary the fit may choose; None without the L2 or with fewer than two
    training sizes copying at least the L2."""
    def size(key: str) -> float | None:
        v = (env or {}).get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and v > 0 else None

    l2 = size("l2_cache_bytes")
    if l2 is None or int(np.sum(2 * x_train >= l2)) < 2:
        return None
    seen = 2.0 * float(np.max(x_train))
    # training that sees no further than the L2 pins the boundary there (a range the fitter accepts: upper > lower)
    return l2, max(l2 * (1.0 + 1e-9), min(size("l3_cache_bytes") or seen, seen))


def fit_collectives(rows: list[dict[str, Any]], env: dict[str, Any] | None = None) -> dict[str, Any]:
    """{op: {"bus_factor": str, "by_world": {"<n>": fit}, "cross_world": fit}} for each measured op."""
    out: dict[str, Any] = {}
    for op in OPS:
        items = [(i, r) for i, r in usable(rows, [op]) if (r.get("bytes") or 0) > 0]
        if not items:
            continue
        worlds = sorted({int(r.get("world_size", 1)) for _, r in items})
        by_world = {}
        for w in worlds:
            pts = _points(op, [(i, r) for i, r in items if int(r.get("world_size", 1)) == w])
            meta = {"op": op, "world_size": w, "bus_factor_value": float(bus_factor(op, w))}
            train, _, _ = split_largest(pts.x, min_train=3, x_name="message_bytes")
            # the CPU's caches: a GPU's collectives do not run through the host's L2
            cache = _cache_range(env, pts.x[train]) if all(r.get("device") == "cpu" for _, r in items) else None
            if w == 1:
                models = _world1_models(op, pts.x, pts.y, cache)
            else:
                models = _models(op, pts.x, pts.y, pts.feats["world_size"], cache)
            rec = fit_largest_heldout(models, pts, x_name="message_bytes", meta=meta)
            if rec.get("tiers_inverted"):  # the sizes did not resolve the tiers: one tier, and the record says why
                why = f"one tier fitted: {rec['reason']}"
                models = _world1_models(op, pts.x, pts.y) if w == 1 else _models(op, pts.x, pts.y, pts.feats["world_size"])
                rec = {**fit_largest_heldout(models, pts, x_name="message_bytes", meta=meta), "note": why}
            if w == 1 and rec["status"] == "ok":
                rec["label"] = ("world size 1: no link is crossed; a call cost" +
                                (" plus a local copy of the buffer" if rec["model"].startswith("local_copy") else "") +
                                " (no bus bandwidth is measurable)")
            by_world[str(w)] = rec
        out[op] = {"bus_factor": BUS_FACTORS[op], "by_world": by_world,
                   "cross_world": _cross_world(op, items, worlds)}
    return out


def _cross_world(op: str, items: list[tuple[int, dict[str, Any]]], worlds: list[int]) -> dict[str, Any]:
    multi = [w for w in worlds if w > 1]
    if len(multi) < 2:
        return insufficient(f"measured world sizes {worlds}: predicting the largest needs at least one "
                            "smaller world size above 1 (non-oversubscribed)", op=op)
    largest = multi[-1]
    use = [(i, r) for i, r in items if int(r.get("world_size", 1)) > 1]
    pts = _points(op, use)
    n = pts.feats["world_size"]
    train, held = np.flatnonzero(n < largest), np.flatnonzero(n == largest)
    rule = (f"all {len(held)} points of the largest world size ({largest}), predicted from world sizes "
            f"{multi[:-1]} through the bus factor {BUS_FACTORS[op]}")
    models = _models(op, pts.x[train], pts.y[train], n[train])
    return fit_record(models, pts, train, held, rule, x_name="message_bytes",
                      meta={"op": op, "train_world_sizes": multi[:-1], "heldout_world_size": largest})
