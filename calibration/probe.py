"""Probe, then plan: a few seconds of small measurements on this machine before the grids are built, and a
plan that sizes the grids to a time budget from them.

The probe times a 256³ and a 512³ matmul per dtype (after a warm-up), a tiny matmul (the per-call overhead)
and a tensor copy (memory bandwidth). A dtype whose best throughput is below 1/8 of fp32's is marked
`emulated` (bf16 on a CPU without AVX-512-BF16/AMX runs ~100x slower than fp32 there).

`fit_budget` predicts each step's time (the interleaved timing loop's warm-up + samples × per-sample time, with
the call time from the probe: overhead + max(flops / throughput, bytes / bandwidth)), keeps only a few of the
smallest points of an emulated dtype, then drops the most expensive points until the prediction fits the budget,
never leaving a fit group (bench, device, dtype) with fewer than `MIN_POINTS` (its small points for the overhead,
the plateau and the largest remaining ones to hold out).

A plan still over its budget (every group at its fewest points) gets `advice`: the benches to leave out so it fits
(`--skip`; the GEMM bench always stays, other pages plan on it) and the budget it needs as it is. The run prints
it as a warning before it starts (`run_plan.plan_run`); `summary` is the plan as plain data, what
`python -m calibration run --plan-only` prints as its `PLAN {json}` line and the Calibrate page shows.

Test hook: MODELFOLIO_PROBE_SLOW_DTYPE=bf16[,fp16] makes the probe report those dtypes 100x slower than fp32 (or
than themselves, if slower; read only here), so tests can check the plan for an emulated dtype without a slow CPU
(on a CPU with AMX, bf16 measured 100x slower than itself was ~1/8 of fp32: emulated or not by chance).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from calibration.rows import DISTRIBUTED_BENCHES, Step

SLOW_ENV = "MODELFOLIO_PROBE_SLOW_DTYPE"
SLOW_FACTOR = 100.0
EMULATED_RATIO = 1 / 8  # below this fraction of fp32's throughput a dtype is emulated
PROBE_SIZES = (256, 512)
MIN_POINTS = 6  # per fit group: 3 to train (the fits' least) + at least 2 held out, and one spare
EMULATED_POINTS = 4  # an emulated dtype keeps its cheapest few points per group (3 train, none held out)...
EMULATED_MIN = 1  # ...and, over budget, down to its cheapest one (the row still shows the emulation)
LAUNCH_S = 8.0  # a torchrun launch (start-up, rendezvous, imports), per (device, world size)
# a distributed point (fixed repeats of mostly small messages): 0.14-0.17 s measured per point in quick runs on the
# 2-vCPU AMD VM (2026-11-30: 60 world-1 and 73 world-2 points in ~10 s each after their launch), doubled for
# slower hosts; 0.6 before, which took ~30 s of the quick budget from the local fits for nothing
DISTRIBUTED_STEP_S = 0.3
# ...and what it likely takes, for a run's pace (calibration/pace.py), which keeps the likely total within the budget
# and needs no margin on top of the plan's: 46-49 s for 187 points in 2 launches on this project's 2-core machine
# (2026-12-07, four quick runs), 0.17 s a point after the launches
DISTRIBUTED_STEP_LIKELY_S = 0.17
REQUIRED_BENCHES = ("gemm",)  # never left out to fit a budget: a profile without GEMM fits gives no device to plan on
BUDGET_ROUND_S = 10.0  # a suggested budget is rounded up to this many seconds


@dataclass
class Probe:
    device: str
    gflops: dict[str, float]  # dtype -> best measured GFLOP/s over PROBE_SIZES
    gflops_by_size: dict[str, dict[int, float]] = field(default_factory=dict)
    overhead_s: float = 2e-5  # a tiny call
    mem_GBps: float = 5.0
    seconds: float = 0.0
    slowed: tuple[str, ...] = ()  # dtypes slowed by the test hook

    @property
    def emulated(self) -> list[str]:
        ref = self.gflops.get("fp32")
        if not ref:
            return []
        return sorted(d for d, g in self.gflops.items() if d != "fp32" and g < EMULATED_RATIO * ref)

    def flops_per_s(self, dtype: str | None) -> float:
        g = self.gflops.get(dtype or "fp32") or self.gflops.get("fp32") or 1.0  # int8: as fp32
        return g * 1e9

    def environment(self) -> dict[str, Any]:
        """Flat figures for `environment.probe` (the profile's environment holds objects of scalars)."""
        d = self.device
        out: dict[str, Any] = {f"{d}.{dt}.gflops": round(g, 3) for dt, g in self.gflops.items()}
        for dt, by in self.gflops_by_size.items():
            out.update({f"{d}.{dt}.gflops_{s}": round(g, 3) for s, g in by.items()})
        out.update({f"{d}.overhead_us": round(self.overhead_s * 1e6, 2), f"{d}.mem_GBps": round(self.mem_GBps, 2),
                    f"{d}.probe_s": round(self.seconds, 2)})
        if self.slowed:
            out[f"{d}.slowed_by_test_hook"] = ",".join(self.slowed)
        return out


def slow_dtypes() -> set[str]:
    return {d.strip() for d in os.environ.get(SLOW_ENV, "").split(",") if d.strip()}


def dtypes_for(device: str) -> list[str]:
    return ["fp32", "bf16", "fp16"] if device == "cuda" else ["fp32", "bf16"]


def _time_call(fn: Callable[[], object], device: str, budget_s: float = 0.1, reps: int = 10,
               warmup_s: float = 0.05) -> float:
    """Best-of seconds per call after a warm-up (at least one call and `warmup_s`; a slow call stops the
    repeats early, so an emulated dtype costs about a second)."""
    from calibration.timing import sync

    t_warm = time.perf_counter()
    while True:
        fn()
        sync(device)
        if time.perf_counter() - t_warm >= warmup_s:
            break
    best, spent = math.inf, 0.0
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync(device)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
        if spent > budget_s:
            break
    return max(best, 1e-9)


def probe(device: str = "cpu", dtypes: list[str] | None = None, sizes: tuple[int, ...] = PROBE_SIZES) -> Probe:
    """Measure this machine for a few seconds (less than one on a machine with native bf16)."""
    import torch

    from calibration.timing import torch_dtype

    t0 = time.perf_counter()
    dtypes = dtypes or dtypes_for(device)
    by_size: dict[str, dict[int, float]] = {}
    for name in dtypes:
        dt = torch_dtype(name)
        by_size[name] = {}
        for s in sizes:
            a = torch.randn(s, s, device=device).to(dt)
            b = torch.randn(s, s, device=device).to(dt)
            sec = _time_call(lambda a=a, b=b: torch.matmul(a, b), device)
            by_size[name][s] = 2.0 * s**3 / sec / 1e9
    slowed = tuple(sorted(slow_dtypes() & set(dtypes)))
    for name in slowed:  # as a CPU without a fast unit for it: SLOW_FACTOR below fp32 (or its own, if slower)
        ref = by_size.get("fp32", {})
        by_size[name] = {s: min(g, ref.get(s, g)) / SLOW_FACTOR for s, g in by_size[name].items()}
    tiny = torch.randn(8, 8, device=device)
    overhead = _time_call(lambda: torch.matmul(tiny, tiny), device, reps=50)
    src, dst = torch.ones(8 << 20, device=device), torch.empty(8 << 20, device=device)  # 32 MiB each
    sec = _time_call(lambda: dst.copy_(src), device)  # read once, written once
    return Probe(device, {d: max(v.values()) for d, v in by_size.items()}, by_size, overhead,
                 2 * src.numel() * 4 / sec / 1e9, time.perf_counter() - t0, slowed)


# ---------------------------------------------------------------- cost of a step


def step_cost(step: Step) -> tuple[float, float]:
    """(flops, bytes) of one call of a local step, roughly as its bench counts them."""
    from calibration.bench.compute import block_flops
    from calibration.bench.decoder import decode_bytes, decode_flops, layer_params, prefill_flops
    from calibration.timing import element_bytes

    p, elt = step.params, element_bytes(step.dtype)
    if step.bench == "gemm":
        m, n, k = int(p["m"]), int(p["n"]), int(p["k"])
        return 2.0 * m * n * k, float((m * k + k * n + m * n) * elt)
    if step.bench == "block_fwd_bwd":
        h, s, b = int(p["hidden"]), int(p["seq"]), int(p["batch"])
        return block_flops(b, s, h), float(12 * h * h * elt)
    if step.bench == "moe_layer":  # expert and router GEMMs; the bytes: weights, then the routing passes
        from simulator.profile_models import moe_expert_flops, moe_layer_inventory

        t, e, k, h, f = (int(p[x]) for x in ("tokens", "experts", "top_k", "hidden", "expert_ffn"))
        _, moved = moe_layer_inventory(t, e, k, h, f, elt)
        return float(moe_expert_flops(t, k, h, f)) + 2.0 * t * h * e, float(3 * e * h * f * elt + sum(moved.values()))
    if step.bench in ("infer_linear", "prune_latency"):
        h, b, layers = int(p["hidden"]), int(p["batch"]), int(p.get("layers", 1))
        return 2.0 * b * h * h * layers, float(h * h * layers * elt)
    if step.bench == "prefill":
        L, h, v, b, s = (int(p[k]) for k in ("layers", "hidden", "vocab", "batch", "prompt"))
        return prefill_flops(L, h, v, b, s), float((layer_params(L, h) + h * v) * elt)
    if step.bench == "decode":
        L, h, v, b, c = (int(p[k]) for k in ("layers", "hidden", "vocab", "batch", "context"))
        return decode_flops(L, h, v, b, c), decode_bytes(L, h, v, b, c, elt)
    return 0.0, 0.0


def call_s(step: Step, pr: Probe) -> float:
    flops, nbytes = step_cost(step)
    return pr.overhead_s + max(flops / pr.flops_per_s(step.dtype), nbytes / (pr.mem_GBps * 1e9))


def point_parts(c: float, nbytes: float, cfg: Any) -> tuple[float, float]:
    """(seconds before its samples, seconds of its samples) of one local point whose call takes `c` seconds, in
    the interleaved timing loop (timing.time_interleaved): the preparation (random operands at ~1 GB/s and a
    reference call) and the warm-up, then the planned samples of `inner` calls each, with a re-warming call before
    each sample of a short call."""
    from calibration.timing import inner_count, plan_samples

    warm = max(cfg.warmup * c, cfg.warmup_s) + c
    inner = inner_count(c, cfg)
    n = plan_samples(c, inner, cfg)
    rewarm = n * c if c < cfg.rewarm_below_s else 0.0
    prepare = c + nbytes / 1e9
    return warm + prepare, n * inner * c + rewarm


def point_s(step: Step, pr: Probe, mode: str) -> float:
    """Predicted seconds for one local point in the interleaved timing loop (timing.time_interleaved)."""
    from calibration.timing import timing_for

    before, samples = point_parts(call_s(step, pr), step_cost(step)[1], timing_for(mode, step.device))
    return before + samples


def distributed_s(steps: list[Step], step_s: float = DISTRIBUTED_STEP_S) -> float:
    """Predicted seconds of the torchrun launches of `steps`: the plan's (pessimistic) per point by default."""
    launches = {(s.device, s.world_size) for s in steps}
    return LAUNCH_S * len(launches) + step_s * len(steps)


# ---------------------------------------------------------------- the plan


def group_key(step: Step) -> tuple:
    """The points one fit shares (dropping within a group keeps that fit's smallest and largest-remaining)."""
    key: tuple = (step.bench, step.device, step.dtype)
    if step.bench == "prune_latency":
        key += (step.params.get("method"), step.params.get("hook"))
    return key


@dataclass
class Plan:
    steps: list[Step]
    predicted_s: float
    unplanned_s: float
    budget_s: float
    dropped: int
    emulated: dict[str, list[str]]  # device -> dtypes
    per_bench: dict[str, tuple[int, int, float]]  # bench -> (kept, of, predicted seconds)
    point_s: dict[str, float] = field(default_factory=dict)  # local step key -> predicted seconds of the point
    call_s: dict[str, float] = field(default_factory=dict)  # local step key -> predicted seconds of one call
    distributed_s: float = 0.0  # the torchrun launches' predicted seconds
    nbytes: dict[str, float] = field(default_factory=dict)  # local step key -> bytes of its operands

    @property
    def fits(self) -> bool:
        return self.predicted_s <= self.budget_s

    def describe(self) -> str:
        lines = [f"plan: {len(self.steps)} steps, predicted {self.predicted_s:.0f} s of a {self.budget_s:.0f} s budget "
                 f"(the full grid: {self.unplanned_s:.0f} s; {self.dropped} points dropped)"]
        for dev, dts in self.emulated.items():
            if dts:
                lines.append(f"  {dev}: {', '.join(dts)} emulated (below 1/{round(1 / EMULATED_RATIO)} of fp32): "
                             f"a few small points only")
        for bench, (kept, of, sec) in self.per_bench.items():
            lines.append(f"  {bench:16s} {kept:4d} of {of:4d} points, ~{sec:.0f} s")
        return "\n".join(lines)  # over budget: run_plan.print_plan warns, with what fits

    @property
    def launch_s(self) -> float:
        """The torchrun start-ups: the prediction less what its benches account for."""
        return self.predicted_s - sum(sec for _, _, sec in self.per_bench.values())


def fit_budget(steps: list[Step], probes: dict[str, Probe], mode: str, budget_s: float) -> Plan:
    """The steps (in their order) whose predicted time fits `budget_s`; see the module docstring."""
    local = [s for s in steps if s.bench not in DISTRIBUTED_BENCHES and s.device in probes]
    local_keys = {s.key() for s in local}
    fixed = [s for s in steps if s.key() not in local_keys]
    fixed_keys = {s.key() for s in fixed}
    cost = {s.key(): point_s(s, probes[s.device], mode) for s in local}
    fixed_s = distributed_s([s for s in fixed if s.bench in DISTRIBUTED_BENCHES])
    unplanned = fixed_s + sum(cost.values())
    groups: dict[tuple, list[Step]] = {}
    for s in local:
        groups.setdefault(group_key(s), []).append(s)
    emulated = {d: pr.emulated for d, pr in probes.items()}
    least: dict[tuple, int] = {}
    for key, group in groups.items():
        group.sort(key=lambda s: cost[s.key()])
        if key[2] in emulated.get(key[1], []):
            del group[EMULATED_POINTS:]
            least[key] = EMULATED_MIN
        else:
            least[key] = MIN_POINTS
    total = fixed_s + sum(cost[s.key()] for g in groups.values() for s in g)
    while total > budget_s:
        droppable = [(k, g) for k, g in groups.items() if len(g) > least[k]]
        if not droppable:
            break
        _, g = max(droppable, key=lambda kg: cost[kg[1][-1].key()])
        total -= cost[g.pop().key()]
    keep = {s.key() for g in groups.values() for s in g}
    kept = [s for s in steps if s.key() in fixed_keys or s.key() in keep]
    per_bench: dict[str, tuple[int, int, float]] = {}
    for s in steps:
        k, n, sec = per_bench.get(s.bench, (0, 0, 0.0))
        mine = s.key() in fixed_keys or s.key() in keep
        per_bench[s.bench] = (k + mine, n + 1, sec + (cost.get(s.key(), 0.0) if mine else 0.0))
    for bench in DISTRIBUTED_BENCHES:
        if bench in per_bench:
            k, n, _ = per_bench[bench]
            per_bench[bench] = (k, n, DISTRIBUTED_STEP_S * k)
    calls = {s.key(): call_s(s, probes[s.device]) for s in local if s.key() in keep}
    nbytes = {s.key(): step_cost(s)[1] for s in local if s.key() in keep}
    return Plan(kept, total, unplanned, budget_s, len(steps) - len(kept), emulated, per_bench,
                {k: v for k, v in cost.items() if k in keep}, calls, fixed_s, nbytes)


def leave_out_to_fit(steps: list[Step], probes: dict[str, Probe], mode: str, budget_s: float,
                     keep: tuple[str, ...] = REQUIRED_BENCHES) -> tuple[tuple[str, ...], Plan] | None:
    """The benches to leave out so the plan fits `budget_s`, and the plan without them; None when leaving out every
    bench but `keep` is still over. Each pick is the cheapest bench whose fewest points alone close the gap, else the
    most expensive one (then the gap is measured again), so as little is lost as the budget allows."""
    left_out: list[str] = []
    remaining = list(steps)
    while True:
        sized = fit_budget(remaining, probes, mode, budget_s)
        if sized.fits:
            return tuple(left_out), sized
        seconds = {b: sec for b, (k, _, sec) in sized.per_bench.items() if k and b not in keep}
        if not seconds:
            return None
        gap = sized.predicted_s - budget_s
        enough = [b for b, sec in seconds.items() if sec >= gap]
        pick = min(enough, key=seconds.__getitem__) if enough else max(seconds, key=seconds.__getitem__)
        left_out.append(pick)
        remaining = [s for s in remaining if s.bench != pick]


def needed_budget_s(hardware_s: float, quality_share: float) -> float:
    """The whole-run budget whose hardware part (all but the quality share) holds `hardware_s`, rounded up."""
    whole = hardware_s / (1.0 - quality_share)
    return math.ceil(whole / BUDGET_ROUND_S - 1e-9) * BUDGET_ROUND_S


def summary(sized: Plan, probes: dict[str, Probe], mode: str, budget_s: float, quality_share: float,
            skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A plan as plain data (JSON): the whole run's predicted seconds (the hardware plan, plus the quality
    calibration's share of the budget, which it sizes itself to) against the whole budget, points per bench, the
    emulated dtypes, what `skip` left out and the full grid's prediction."""
    emulated = []
    for dev, dtypes in sized.emulated.items():
        for dt in dtypes:
            mine = [s for s in sized.steps if s.device == dev and s.dtype == dt]
            emulated.append({"device": dev, "dtype": dt, "points": len(mine),
                             "benches": sorted({s.bench for s in mine}),
                             "gflops": probes[dev].gflops.get(dt), "fp32_gflops": probes[dev].gflops.get("fp32")})
    quality_s = budget_s * quality_share
    return {"mode": mode, "devices": list(probes), "budget_s": budget_s, "predicted_s": sized.predicted_s + quality_s,
            "hardware_s": sized.predicted_s, "hardware_budget_s": sized.budget_s, "quality_s": quality_s,
            "launch_s": sized.launch_s, "unplanned_s": sized.unplanned_s + quality_s, "points": len(sized.steps), "dropped": sized.dropped,
            "fits_budget": sized.fits, "skip": list(skip), "probe_s": sum(p.seconds for p in probes.values()),
            "benches": [{"bench": b, "points": k, "of": n, "predicted_s": sec}
                        for b, (k, n, sec) in sized.per_bench.items()],
            "emulated": emulated, "text": sized.describe()}


def advice(steps: list[Step], sized: Plan, probes: dict[str, Probe], mode: str, budget_s: float,
           quality_share: float, skip: tuple[str, ...] = ()) -> dict[str, Any] | None:
    """For a plan over its budget: the whole-run budget it needs as it is, with that plan, and the benches to leave
    out so it fits the budget given, with that plan (None where no choice of benches fits). None when it fits."""
    if sized.fits:
        return None
    need_s = needed_budget_s(sized.predicted_s, quality_share)
    raised = fit_budget(steps, probes, mode, need_s * (1 - quality_share))
    out: dict[str, Any] = {"budget_s": need_s, "leave_out": None, "leave_out_plan": None,
                           "budget_plan": summary(raised, probes, mode, need_s, quality_share, skip)}
    fit = leave_out_to_fit(steps, probes, mode, sized.budget_s)
    if fit is not None:
        benches, smaller = fit
        out["leave_out"] = list(benches)
        out["leave_out_plan"] = summary(smaller, probes, mode, budget_s, quality_share, (*skip, *benches))
    return out


def clock(seconds: float) -> str:
    """Seconds as m:ss, as the plan's warning and the Calibrate page say durations."""
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}:{secs:02d}"


def over_budget_warning(plan: dict[str, Any]) -> str:
    """The warning for a plan (a `summary` with its `advice`) predicted over its budget: by how much, that each fit
    already keeps its fewest points, and what fits: the benches to leave out, or the budget it needs."""
    quality = f", the quality calibration's {clock(plan['quality_s'])} included" if plan.get("quality_s") else ""
    text = (f"the plan is predicted to take {clock(plan['predicted_s'])} (min:s{quality}), over its "
            f"{clock(plan['budget_s'])} budget, with every fit already at its fewest points")
    tips = []
    adv = plan.get("advice") or {}
    if adv.get("leave_out"):
        benches = ",".join(adv["leave_out"])
        tips.append(f"leave out {', '.join(adv['leave_out'])} (--skip {benches}: predicted "
                    f"{clock(adv['leave_out_plan']['predicted_s'])})")
    if adv.get("budget_s"):
        tips.append(f"allow --budget-s {adv['budget_s']:g} ({clock(adv['budget_s'])})")
    return text + (". To fit: " + ", or ".join(tips) + "." if tips else ".")


def probe_environment(probes: dict[str, Probe]) -> dict[str, Any]:
    """`environment.probe` (flat figures per device and dtype) and `environment.emulated` (dtype names)."""
    figures: dict[str, Any] = {}
    for pr in probes.values():
        figures.update(pr.environment())
    return {"probe": figures, "emulated": sorted({d for pr in probes.values() for d in pr.emulated})}
