"""Collectives and a parameter-server push/pull, run inside an initialised process group.

Sizes follow nccl-tests ("size"): all_reduce and broadcast move `bytes` per rank; for all_gather
`bytes` is the gathered output (each rank contributes bytes/p), for reduce_scatter the input
(each rank keeps bytes/p), i.e. the n of Thakur et al. 2005 in t = α + n·c(p)/B.
Each repeat starts after a barrier; a repeat's time is the slowest rank's (max over ranks).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
import torch.distributed as dist

from calibration.bench.base import Measurement, SkipBench
from calibration.rows import Step
from calibration.timing import TimingConfig, time_fn


def device_name(step: Step) -> str:
    if step.device == "cuda":
        if not torch.cuda.is_available():
            raise SkipBench("CUDA is not available on this machine")
        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"


def repeats_for(nbytes: float, cfg: TimingConfig) -> TimingConfig:
    """Fixed counts (ranks must agree): many repeats for small messages, few for large ones."""
    base = 40 if nbytes <= 1 << 20 else 20 if nbytes <= 16 << 20 else 10
    n = max(3, round(base * cfg.repeats / 15))  # 40/20/10 in --quick, 1.7x that in --full
    return TimingConfig(repeats=n, warmup=max(2, cfg.warmup), max_s=cfg.max_s, min_repeats=n)


def timed(fn: Callable[[], object], device: str, cfg: TimingConfig) -> list[float]:
    """Per-repeat seconds, max over ranks (nccl-tests reports the slowest rank)."""
    dev = "cuda" if device.startswith("cuda") else "cpu"
    times_s = time_fn(fn, dev, cfg, barrier=dist.barrier, fixed=True)
    t = torch.tensor(times_s, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [float(x) for x in t.cpu()]


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
    times_s = timed(lambda: dist.all_reduce(x), device, repeats_for(n * 4, cfg))
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
    times_s = timed(fn, device, repeats_for(n * 4, cfg))
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
    times_s = timed(fn, device, repeats_for(n * 4, cfg))
    return Measurement(times_s, bytes=n * 4.0, extra={"api": api, "per_rank_out_bytes": n * 4 // world,
                                                      "backend": dist.get_backend()})


def broadcast(step: Step, cfg: TimingConfig) -> Measurement:
    device, world = device_name(step), dist.get_world_size()
    n = _elements(int(step.params["bytes"]), world)
    x = torch.rand(n, device=device)
    times_s = timed(lambda: dist.broadcast(x, src=0), device, repeats_for(n * 4, cfg))
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

    times_s = timed(fn, device, repeats_for(n * 4, cfg))
    return Measurement(times_s, bytes=n * 4.0,
                       extra={"shard_bytes": shard * 4, "server_in_bytes": workers * shard * 4,
                              "backend": dist.get_backend(), "api": "batch_isend_irecv"})
