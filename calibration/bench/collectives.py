"""Collectives and a parameter-server push/pull, run inside an initialised process group.

Sizes follow nccl-tests ("size"): all_reduce and broadcast move `bytes` per rank; for all_gather
`bytes` is the gathered output (each rank contributes bytes/p), for reduce_scatter the input
(each rank keeps bytes/p), for all_to_all the whole send buffer of a rank (it keeps bytes/p and sends bytes/p to
each other rank), i.e. the n of Thakur et al. 2005 in t = α + n·c(p)/B.
Each repeat starts after a barrier; a repeat's time is the slowest rank's (max over ranks).
"""

from __future__ import annotations

import heapq
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
import torch.distributed as dist

from calibration.bench.base import Measurement, SkipBench
from calibration.rows import Step
from calibration.timing import (
    TimingConfig,
    Timings,
    inner_count,
    median_rel_ci,
    sample_s,
    sync,
    time_fn,
    warm_up,
)


@dataclass
class Setup:
    """A collective ready to call on every rank: `fn()` is one call moving `nbytes` (nccl-tests' size)."""

    fn: Callable[[], object]
    device: str
    nbytes: float
    extra: dict[str, Any] = field(default_factory=dict)


def device_name(step: Step) -> str:
    if step.device == "cuda":
        if not torch.cuda.is_available():
            raise SkipBench("CUDA is not available on this machine")
        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"


BEST_OF = 3  # world > 1 on CPU: a sample is the best of this many barrier-separated calls


def best_of(device: str) -> int:
    """Calls per sample across ranks. Two gloo ranks on a 2-vCPU VM stall 3-4 ms in a quarter to a half of
    all calls, whatever the size (a wake-up or scheduling delay of the VM, measured here with and without
    barriers, pinning and idle spinners alike); the median of single calls then depends on how often that
    happened during the point. The best of 3 calls (each the slowest rank's time) is the collective's own
    cost, and the median over such samples repeats from run to run. GPUs (nccl) time one call."""
    world = dist.get_world_size() if dist.is_initialized() else 1
    return BEST_OF if world > 1 and not device.startswith("cuda") else 1


def repeats_for(nbytes: float, cfg: TimingConfig, device: str = "cpu") -> TimingConfig:
    """Fixed counts (ranks must agree): many repeats for small messages, few for large ones. A call
    shorter than cfg.min_sample_s is looped k times per sample (k agreed by all ranks, see `timed`)."""
    base = 30 if nbytes <= 1 << 20 else 24 if nbytes <= 16 << 20 else 12
    n = max(3, round(base * cfg.repeats / 31)) if cfg.repeats >= 15 else max(3, cfg.repeats)
    k = best_of(device)
    if k > 1:
        n = max(3, round(n * 0.4))  # 30/24/12 -> 12/10/5 samples of 3 calls each
    # A fixed warm-up count too: a time-based one would let ranks call the collective unequally often.
    # Across ranks, back-to-back calls are no faster and far noisier than one call after a barrier (two
    # gloo ranks on 2 vCPUs: 1 KiB all_reduce ~0.3 ms alone, ~1.5 ms per call in a loop), so the inner
    # loop is kept for world size 1 only, where a call is tens of microseconds.
    world = dist.get_world_size() if dist.is_initialized() else 1
    return replace(cfg, repeats=n * k, warmup=max(3, cfg.warmup), min_repeats=n * k, target_rel_ci=0.0,
                   warmup_s=0.0, min_sample_s=cfg.min_sample_s if world == 1 else 0.0)


def _agree_max(device: str) -> Callable[[int], int]:
    """The largest inner count over ranks, so every rank calls the collective equally often."""
    def agree(k: int) -> int:
        t = torch.tensor([k], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return int(t.item())

    return agree


def timed(fn: Callable[[], object], device: str, cfg: TimingConfig, best: int = 1) -> list[float]:
    """Per-sample seconds per call, max over ranks (nccl-tests reports the slowest rank); with best > 1,
    consecutive groups of `best` calls become one sample, their minimum (see `best_of`)."""
    dev = "cuda" if device.startswith("cuda") else "cpu"
    times_s = time_fn(fn, dev, cfg, barrier=dist.barrier, fixed=True, agree=_agree_max(device))
    t = torch.tensor(list(times_s), dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    per_call = [float(x) for x in t.cpu()]
    out = Timings(min(per_call[i:i + best]) for i in range(0, len(per_call) - best + 1, best)) \
        if best > 1 else Timings(per_call)
    out.info = {**times_s.info, **({"best_of": best} if best > 1 else {})}
    return out


def _timed_collective(fn: Callable[[], object], device: str, nbytes: float, cfg: TimingConfig) -> list[float]:
    return timed(fn, device, repeats_for(nbytes, cfg, device), best=best_of(device))


def _elements(nbytes: int, world: int) -> int:
    """fp32 elements for `nbytes`, rounded to a multiple of the world size (at least one each)."""
    n = max(world, nbytes // 4)
    return n - n % world


def _call(names: tuple[str, ...], *args: torch.Tensor) -> str:
    """Call the first of dist.<name> that exists (torch renamed *_into_tensor to *_single in 2.13)."""
    for name in names:
        fn = getattr(dist, name, None)
        if fn is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                fn(*args)
            return name
    raise AttributeError(f"none of torch.distributed.{names} exists")


def setup_all_reduce(step: Step) -> Setup:
    device, world = device_name(step), dist.get_world_size()
    n = _elements(int(step.params["bytes"]), world)
    x = torch.rand(n, device=device)
    return Setup(lambda: dist.all_reduce(x), device, n * 4.0, {"api": "all_reduce", "backend": dist.get_backend()})


def setup_all_gather(step: Step) -> Setup:
    device, world = device_name(step), dist.get_world_size()
    n = _elements(int(step.params["bytes"]), world)
    x = torch.rand(n // world, device=device)
    out = torch.empty(n, device=device)
    try:
        api = _call(("all_gather_single", "all_gather_into_tensor"), out, x)
        fn = lambda: _call((api,), out, x)  # noqa: E731
    except (RuntimeError, NotImplementedError, AttributeError, ValueError):
        api = "all_gather(list)"
        outs = list(out.chunk(world))
        fn = lambda: dist.all_gather(outs, x)  # noqa: E731
    return Setup(fn, device, n * 4.0, {"api": api, "per_rank_in_bytes": n * 4 // world,
                                       "backend": dist.get_backend()})


def setup_reduce_scatter(step: Step) -> Setup:
    device, world = device_name(step), dist.get_world_size()
    n = _elements(int(step.params["bytes"]), world)
    x = torch.rand(n, device=device)
    out = torch.empty(n // world, device=device)
    errors: list[str] = []
    try:
        api = _call(("reduce_scatter_single", "reduce_scatter_tensor"), out, x)
        fn = lambda: _call((api,), out, x)  # noqa: E731
    except (RuntimeError, NotImplementedError, AttributeError, ValueError) as e:
        errors.append(f"tensor API: {e}")
        ins = list(x.chunk(world))
        try:
            dist.reduce_scatter(out, ins)
            api = "reduce_scatter(list)"
            fn = lambda: dist.reduce_scatter(out, ins)  # noqa: E731
        except (RuntimeError, NotImplementedError, ValueError) as e2:
            errors.append(f"list API: {e2}")
            raise RuntimeError(f"{dist.get_backend()} has no reduce_scatter: {'; '.join(errors)}") from e2
    return Setup(fn, device, n * 4.0, {"api": api, "per_rank_out_bytes": n * 4 // world,
                                       "backend": dist.get_backend()})


def setup_broadcast(step: Step) -> Setup:
    device, world = device_name(step), dist.get_world_size()
    n = _elements(int(step.params["bytes"]), world)
    x = torch.rand(n, device=device)
    return Setup(lambda: dist.broadcast(x, src=0), device, n * 4.0,
                 {"api": "broadcast", "backend": dist.get_backend()})


def setup_all_to_all(step: Step) -> Setup:
    """`dist.all_to_all_single` with equal splits: each rank sends bytes/p to every rank (nccl-tests alltoall: size =
    the send buffer per rank). A backend without it (it raises on a tiny call here) is skipped, saying so."""
    device, world = device_name(step), dist.get_world_size()
    n = _elements(int(step.params["bytes"]), world)
    x = torch.rand(n, device=device)
    out = torch.empty(n, device=device)
    try:
        dist.all_to_all_single(out[:world], x[:world])  # every rank calls it: ranks stay in step whatever happens
    except (RuntimeError, NotImplementedError, AttributeError, ValueError) as e:
        raise SkipBench(f"the {dist.get_backend()} backend has no all_to_all_single on {device} tensors: {e}") from e
    return Setup(lambda: dist.all_to_all_single(out, x), device, n * 4.0,
                 {"api": "all_to_all_single", "per_rank_chunk_bytes": n * 4 // world, "backend": dist.get_backend()})


def setup_ps_push_pull(step: Step) -> Setup:
    """The last S ranks serve; each of the W workers pushes its gradient (bytes, sharded S ways)
    and pulls the updated parameter shards back.  Servers sum the W pushes and apply an SGD step."""
    device, world, rank = device_name(step), dist.get_world_size(), dist.get_rank()
    servers = int(step.params["servers"])
    workers = world - servers
    if servers < 1 or workers < 1:
        raise SkipBench(f"servers={servers} needs 1 <= servers < world_size={world}")
    n = _elements(int(step.params["bytes"]), servers)
    shard = n // servers
    server_ranks = list(range(workers, world))
    if rank < workers:
        grad = torch.rand(n, device=device)
        pulled = torch.empty(n, device=device)
        sends = [(grad[s * shard:(s + 1) * shard], r) for s, r in enumerate(server_ranks)]
        recvs = [(pulled[s * shard:(s + 1) * shard], r) for s, r in enumerate(server_ranks)]

        def fn() -> None:
            ops = [dist.P2POp(dist.isend, t, r) for t, r in sends]
            for req in dist.batch_isend_irecv(ops):
                req.wait()
            ops = [dist.P2POp(dist.irecv, t, r) for t, r in recvs]
            for req in dist.batch_isend_irecv(ops):
                req.wait()
    else:
        inbox = torch.empty(workers, shard, device=device)
        param = torch.rand(shard, device=device)

        def fn() -> None:
            ops = [dist.P2POp(dist.irecv, inbox[w], w) for w in range(workers)]
            for req in dist.batch_isend_irecv(ops):
                req.wait()
            param.add_(inbox.sum(0), alpha=-1e-3)
            ops = [dist.P2POp(dist.isend, param, w) for w in range(workers)]
            for req in dist.batch_isend_irecv(ops):
                req.wait()

    return Setup(fn, device, n * 4.0, {"shard_bytes": shard * 4, "server_in_bytes": workers * shard * 4,
                                       "backend": dist.get_backend(), "api": "batch_isend_irecv"})


SETUPS: dict[str, Callable[[Step], Setup]] = {
    "all_reduce": setup_all_reduce, "all_gather": setup_all_gather, "reduce_scatter": setup_reduce_scatter,
    "broadcast": setup_broadcast, "all_to_all": setup_all_to_all, "ps_push_pull": setup_ps_push_pull,
}


def _bench(name: str) -> Callable[[Step, TimingConfig], Measurement]:
    def bench(step: Step, cfg: TimingConfig) -> Measurement:
        """One point timed on its own (see `time_interleaved_collectives` for a run's points together)."""
        su = SETUPS[name](step)
        return Measurement(_timed_collective(su.fn, su.device, su.nbytes, cfg), bytes=su.nbytes, extra=su.extra)

    bench.__name__ = name
    return bench


all_reduce = _bench("all_reduce")
all_gather = _bench("all_gather")
reduce_scatter = _bench("reduce_scatter")
broadcast = _bench("broadcast")
all_to_all = _bench("all_to_all")
ps_push_pull = _bench("ps_push_pull")


def time_interleaved_collectives(setups: list[Setup], cfg: TimingConfig,
                                 prior: list[list[float]] | None = None,
                                 on_round: Callable[[dict[int, list[float]]], None] | None = None) -> list[Timings]:
    """Time many collectives in one process group with their samples interleaved, as the local benches are
    (calibration.timing.time_interleaved): on a shared 2-vCPU VM, two gloo ranks' per-byte cost drifts by
    30-50% over tens of seconds (all_reduce 4 MiB: 0.49-0.75 ms/MiB in three back-to-back sequential passes,
    0.78-0.87 interleaved with 1-16 MiB), so a point timed in one burst carries its moment's state and the
    curve over sizes zig-zags; interleaved, every size sees the same mix.

    Every rank runs the same schedule: each point gets a fixed warm-up, an inner count agreed by all ranks
    (world size 1 only, see `repeats_for`) and `repeats_for`'s fixed sample count, and samples are taken in
    stride order (the point whose next sample is most overdue, as a fraction of its count, goes next) -- a
    schedule computed from the sizes alone, never from a rank's clock. A sample is `best_of` consecutive
    barrier-separated calls (one call after an untimed one when best_of is 1); each call's time is the
    slowest rank's.

    A round ends once the live points took one sample each: its calls are maxed over ranks then (one
    all_reduce) and `on_round({point: new samples})` gets them, on every rank, to store. `prior[i]`: samples
    point i already has (every rank is given the same, from a killed launch's stored rounds): with its full
    count it is not timed again; otherwise sampling continues from them."""
    if not setups:
        return []
    prior = prior or [[] for _ in setups]
    k = best_of(setups[0].device)
    plans = [repeats_for(su.nbytes, cfg, su.device) for su in setups]
    devs = ["cuda" if su.device.startswith("cuda") else "cpu" for su in setups]
    counts = [max(1, plan.repeats // k) for plan in plans]
    samples = [Timings(float(t) for t in prior[i][:counts[i]]) for i in range(len(setups))]
    inner: list[int] = [1] * len(setups)
    for i, (su, plan, dev) in enumerate(zip(setups, plans, devs, strict=True)):
        if len(samples[i]) < counts[i]:
            warm = warm_up(su.fn, dev, plan)  # a fixed count: repeats_for sets warmup_s to 0
            inner[i] = int(_agree_max(su.device)(inner_count(min(warm[-3:]), plan)))
    pending: dict[int, list[float]] = {}  # this round's calls, this rank's clock

    def flush() -> None:
        order = sorted(pending)
        sizes = [len(pending[i]) for i in order]
        flat = [x for i in order for x in pending[i]]
        pending.clear()
        if not flat:
            return
        t = torch.tensor(flat, dtype=torch.float64, device=setups[0].device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        calls = [float(x) for x in t.cpu()]
        new: dict[int, list[float]] = {}
        for i, n in zip(order, sizes, strict=True):
            mine, calls = calls[:n], calls[n:]
            new[i] = [min(mine[j:j + k]) for j in range(0, n - k + 1, k)]
            samples[i].extend(new[i])
        if on_round is not None:
            on_round(new)

    queue = [((len(samples[i]) + 0.5) / c, i) for i, c in enumerate(counts) if len(samples[i]) < c]
    heapq.heapify(queue)
    in_round = 0
    while queue:
        _, i = heapq.heappop(queue)
        su, dev = setups[i], devs[i]
        if k == 1:  # one untimed call first: the points between evicted this one's buffers (best_of does it for k > 1)
            su.fn()
            sync(dev)
        calls_i = pending.setdefault(i, [])
        for _ in range(k):
            dist.barrier()
            calls_i.append(sample_s(su.fn, dev, inner[i]) / inner[i])
        if plans[i].sample_sleep_s > 0:  # test hook only (MODELFOLIO_CALIB_SLOW): the launch lasts long enough
            time.sleep(plans[i].sample_sleep_s)
        done = len(samples[i]) + len(calls_i) // k
        in_round += 1
        if done < counts[i]:
            heapq.heappush(queue, ((done + 0.5) / counts[i], i))
        if in_round >= max(1, len(queue)) or not queue:
            flush()
            in_round = 0
    for i, times in enumerate(samples):
        times.info = {"inner": inner[i], "warmup_calls": plans[i].warmup,
                      "rel_ci_median": round(median_rel_ci(times), 4), "interleaved_with": len(setups) - 1,
                      **({"best_of": k} if k > 1 else {}), **({"resumed": len(prior[i])} if prior[i] else {})}
    return samples
