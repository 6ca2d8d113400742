"""Collectives and a parameter-server push/pull, run inside an initialised process group.

Sizes follow nccl-tests ("size"): all_reduce and broadcast move `bytes` per rank; for all_gather
`bytes` is the gathered output (each rank contributes bytes/p), for reduce_scatter the input
(each rank keeps bytes/p), i.e. the n of Thakur et al. 2005 in t = α + n·c(p)/B.
Each repeat starts after a barrier; a repeat's time is the slowest rank's (max over ranks).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import replace

import torch
import torch.distributed as dist

from calibration.bench.base import Measurement, SkipBench
from calibration.rows import Step
from calibration.timing import TimingConfig, Timings, time_fn


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


def all_reduce(step: Step, cfg: TimingConfig) -> Measurement:
    device, world = device_name(step), dist.get_world_size()
    n = _elements(int(step.params["bytes"]), world)
    x = torch.rand(n, device=device)
    times_s = _timed_collective(lambda: dist.all_reduce(x), device, n * 4, cfg)
    return Measurement(times_s, bytes=n * 4.0, extra={"api": "all_reduce", "backend": dist.get_backend()})


def all_gather(step: Step, cfg: TimingConfig) -> Measurement:
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
    times_s = _timed_collective(fn, device, n * 4, cfg)
    return Measurement(times_s, bytes=n * 4.0, extra={"api": api, "per_rank_in_bytes": n * 4 // world,
                                                      "backend": dist.get_backend()})


def reduce_scatter(step: Step, cfg: TimingConfig) -> Measurement:
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
    times_s = _timed_collective(fn, device, n * 4, cfg)
    return Measurement(times_s, bytes=n * 4.0, extra={"api": api, "per_rank_out_bytes": n * 4 // world,
                                                      "backend": dist.get_backend()})


def broadcast(step: Step, cfg: TimingConfig) -> Measurement:
    device, world = device_name(step), dist.get_world_size()
    n = _elements(int(step.params["bytes"]), world)
    x = torch.rand(n, device=device)
    times_s = _timed_collective(lambda: dist.broadcast(x, src=0), device, n * 4, cfg)
    return Measurement(times_s, bytes=n * 4.0, extra={"api": "broadcast", "backend": dist.get_backend()})


def ps_push_pull(step: Step, cfg: TimingConfig) -> Measurement:
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

    times_s = _timed_collective(fn, device, n * 4, cfg)
    return Measurement(times_s, bytes=n * 4.0,
                       extra={"shard_bytes": shard * 4, "server_in_bytes": workers * shard * 4,
                              "backend": dist.get_backend(), "api": "batch_isend_irecv"})
