"""torchrun entry of the data-order measurement: `python -m torch.distributed.run --nproc-per-node P+1 -m
calibration.quality.data_order_worker SPEC.json`.

Rank 0 is the parameter server (and the referee: it evaluates the held-out loss and says when to stop); ranks 1..P
are workers, each training the char LM on its own reading of the corpus:

- "random" sharding: every batch is windows drawn uniformly from the whole training text (shuffled, i.i.d.);
- "sequential" sharding: worker i reads its own contiguous 1/P of the text (the corpus is stored source by source,
  calibration.quality.data.sourced_corpus) in order, batch after batch, wrapping at its end (non-shuffled).

Three ways to combine them, as the simulator's `cluster.sync` names them:

- "allreduce": synchronous data parallelism, the workers' gradients averaged by a gloo all-reduce among themselves
  (PyTorch DDP's arithmetic, Li et al. 2020), every worker stepping its own copy;
- "ps": a synchronous parameter server (Li et al. 2014): the server receives every worker's gradient, averages,
  steps and sends the parameters back;
- "async": asynchronous SGD through the server (Dean et al. 2012, Downpour SGD): the server applies each gradient
  as it arrives, from whichever worker sent it, and returns its current parameters to that worker, so a gradient
  is computed on parameters as stale as the updates others pushed meanwhile (measured, not imposed).

Each (sync, sharding, repeat) run trains from the same seeded start until the held-out loss reaches the spec's
target or the update cap; the server appends one JSON line per run (its evaluations, updates, wall time, the
staleness it saw) to the spec's `out`, durably, and prints DONE lines for the launcher. A run already in `out` is
not run again (`--resume`). The first run, when the spec gives no target, is the reference that sets it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from calibration.bench.launch import DONE_PREFIX  # the runner's launch follower reads these lines
from calibration.quality.data import encode, sourced_corpus
from calibration.quality.models import CharLM, LMConfig
from calibration.quality.records import read_points
from calibration.quality.train import eval_lm

STOP, GO = 0.0, 1.0


def run_key(sync: str, sharding: str, repeat: int) -> str:
    return f"{sync}/{sharding}/r{repeat}"


def _model(spec: dict[str, Any], vocab: int, seed: int) -> CharLM:
    torch.manual_seed(seed)
    d = spec["d_model"]
    return CharLM(LMConfig(vocab=vocab, d_model=d, layers=spec["layers"], heads=4 if d % 4 == 0 else 1,
                           ctx=spec["ctx"]))


def _flat_grads(model: nn.Module) -> torch.Tensor:
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in model.parameters()])


def _set_grads(model: nn.Module, flat: torch.Tensor) -> None:
    i = 0
    for p in model.parameters():
        n = p.numel()
        p.grad = flat[i:i + n].view_as(p).clone()
        i += n


def _flat_params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def _set_params(model: nn.Module, flat: torch.Tensor) -> None:
    i = 0
    with torch.no_grad():
        for p in model.parameters():
            n = p.numel()
            p.copy_(flat[i:i + n].view_as(p))
            i += n


def _optimizer(model: nn.Module, spec: dict[str, Any]) -> tuple[torch.optim.Optimizer, Any]:
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=0.01)
    warm = max(1, int(spec["warmup"]))
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (t + 1) / warm))


def _step(model: nn.Module, opt: torch.optim.Optimizer, sched: Any) -> None:
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()


class Reader:
    """One worker's batches: random windows of the whole text, or its own contiguous shard read in order."""

    def __init__(self, ids: torch.Tensor, sharding: str, worker: int, workers: int, ctx: int, batch: int,
                 seed: int) -> None:
        self.ctx, self.batch = ctx, batch
        self.gen = torch.Generator().manual_seed(seed)
        if sharding == "sequential":
            n = len(ids)
            self.ids = ids[n * worker // workers: n * (worker + 1) // workers]
        else:
            self.ids = ids
        self.sequential = sharding == "sequential"
        self.cursor = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        span = self.ctx + 1
        if self.sequential:
            starts = []
            for _ in range(self.batch):
                if self.cursor + span > len(self.ids):
                    self.cursor = 0
                starts.append(self.cursor)
                self.cursor += self.ctx
        else:
            starts = torch.randint(0, len(self.ids) - span, (self.batch,), generator=self.gen).tolist()
        win = torch.stack([self.ids[s:s + span] for s in starts])
        return win[:, :-1], win[:, 1:]


def _loss(model: CharLM, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    logits = model(xb)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1))


class Referee:
    """The server's evaluations: every `every` updates, the held-out loss; stops at the target or the cap."""

    def __init__(self, model: CharLM, held: torch.Tensor, spec: dict[str, Any], every: int, cap: int,
                 target: float | None) -> None:
        self.model, self.held, self.every, self.cap, self.target = model, held, every, cap, target
        self.eval_chars = spec["eval_chars"]
        self.evals: list[tuple[int, float, float]] = []  # (updates, loss, seconds)
        self.t0 = time.perf_counter()

    def after(self, updates: int) -> bool:
        """True when the run should stop after this many updates."""
        if updates % self.every and updates < self.cap:
            return False
        loss = eval_lm(self.model, self.held, self.eval_chars)["loss_nats"]
        self.model.train()
        self.evals.append((updates, round(loss, 5), round(time.perf_counter() - self.t0, 4)))
        return updates >= self.cap or (self.target is not None and loss <= self.target)


def _server(spec: dict[str, Any], sync: str, model: CharLM, held: torch.Tensor, target: float | None,
            workers: int) -> dict[str, Any]:
    n = sum(p.numel() for p in model.parameters())
    opt, sched = _optimizer(model, spec)
    # evaluations at the same numbers of samples seen in every mode: an asynchronous update carries one worker's
    # batch, a synchronous one every worker's
    per = workers if sync == "async" else 1
    ref = Referee(model, held, spec, spec["eval_every"] * per, spec["cap_updates"] * per, target)
    grad = torch.zeros(n)
    reply = torch.zeros(n + 1)
    staleness: list[int] = []
    updates = 0
    if sync == "async":
        pulled = dict.fromkeys(range(1, workers + 1), 0)  # the update count each worker's parameters are from
        reply[:n], reply[n] = _flat_params(model), GO
        for w in range(1, workers + 1):
            dist.send(reply, dst=w)
        running = workers
        stop = False
        while running:
            src = dist.recv(grad, src=None)
            if stop:
                reply[n] = STOP
                dist.send(reply, dst=src)
                running -= 1
                continue
            _set_grads(model, grad)
            _step(model, opt, sched)
            staleness.append(updates - pulled[src])
            updates += 1
            stop = ref.after(updates)
            pulled[src] = updates
            reply[:n], reply[n] = _flat_params(model), STOP if stop else GO
            dist.send(reply, dst=src)
            if stop:
                running -= 1
    elif sync == "ps":
        total = torch.zeros(n)
        while True:
            total.zero_()
            for w in range(1, workers + 1):
                dist.recv(grad, src=w)
                total += grad
            _set_grads(model, total / workers)
            _step(model, opt, sched)
            updates += 1
            stop = ref.after(updates)
            reply[:n], reply[n] = _flat_params(model), STOP if stop else GO
            for w in range(1, workers + 1):
                dist.send(reply, dst=w)
            if stop:
                break
    else:  # allreduce: the workers step their own copies; worker 1 sends its parameters after each update
        while True:
            dist.recv(reply, src=1)
            _set_params(model, reply[:n])
            updates += 1
            stop = ref.after(updates)
            flag = torch.tensor([STOP if stop else GO])
            dist.send(flag, dst=1)
            if stop:
                break
    return {"updates": updates, "evals": ref.evals, "staleness_mean": (sum(staleness) / len(staleness)
                                                                         if staleness else 0.0)}


def _worker(spec: dict[str, Any], sync: str, model: CharLM, reader: Reader, group: Any, workers: int) -> int:
    n = sum(p.numel() for p in model.parameters())
    reply = torch.zeros(n + 1)
    steps = 0
    if sync == "async":
        dist.recv(reply, src=0)
        while reply[n] == GO:
            _set_params(model, reply[:n])
            model.zero_grad(set_to_none=True)
            _loss(model, *reader.next()).backward()
            dist.send(_flat_grads(model), dst=0)
            dist.recv(reply, src=0)
            steps += 1
        return steps
    if sync == "ps":
        while True:
            model.zero_grad(set_to_none=True)
            _loss(model, *reader.next()).backward()
            dist.send(_flat_grads(model), dst=0)
            dist.recv(reply, src=0)
            _set_params(model, reply[:n])
            steps += 1
            if reply[n] == STOP:
                return steps
    opt, sched = _optimizer(model, spec)
    flag = torch.zeros(1)
    while True:
        model.zero_grad(set_to_none=True)
        _loss(model, *reader.next()).backward()
        g = _flat_grads(model)
        dist.all_reduce(g, group=group)
        _set_grads(model, g / workers)
        _step(model, opt, sched)
        steps += 1
        if dist.get_rank() == 1:
            reply[:n] = _flat_params(model)
            dist.send(reply, dst=0)
            dist.recv(flag, src=0)
        dist.broadcast(flag, src=1, group=group)
        if flag.item() == STOP:
            return steps


def read_runs(path: Path) -> list[dict[str, Any]]:
    """The runs recorded in `path` (a line cut short by a killed run is skipped)."""
    return [r for r in read_points(path) if isinstance(r.get("workers"), int)]


def _append(path: Path, rec: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(rec) + "\n")
        f.flush()
        os.fsync(f.fileno())


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    dist.init_process_group("gloo", timeout=dt.timedelta(seconds=float(spec.get("pg_timeout_s", 120.0))))
    torch.set_num_threads(1)
    rank, world = dist.get_rank(), dist.get_world_size()
    workers = world - 1
    group = dist.new_group(list(range(1, world)))
    ids_np, _ = encode(sourced_corpus(spec["corpus_chars"], spec["sources"], spec["seed"]))
    vocab = int(ids_np.max()) + 1
    ids = torch.from_numpy(ids_np)
    # held-out: every source's last `held_share` (so the target asks for all of them), the rest is training text
    edges = [round(len(ids) * i / spec["sources"]) for i in range(spec["sources"] + 1)]
    cut = [a + math.ceil((b - a) * (1 - spec["held_share"])) for a, b in itertools.pairwise(edges)]
    train = torch.cat([ids[a:c] for a, c in zip(edges, cut, strict=False)])
    held = torch.cat([ids[c:b] for c, b in zip(cut, edges[1:], strict=False)])
    out = Path(spec["out"])
    done = {r["key"]: r for r in read_runs(out) if r["workers"] == workers} if rank == 0 else {}
    target = spec.get("target_loss")
    if target is None and done.get(spec["reference_key"]):
        target = done[spec["reference_key"]]["target_loss"]
    t_start, took = time.perf_counter(), []
    for run in spec["runs"]:
        key = run_key(run["sync"], run["sharding"], run["repeat"])
        # the server starts a run only when the median run so far still fits in the launch's budget
        late = bool(took) and time.perf_counter() - t_start + sorted(took)[len(took) // 2] > spec["budget_s"]
        skip = torch.tensor([1.0 if key in done or late else 0.0])
        dist.broadcast(skip, src=0)
        if skip.item():
            continue
        seed = spec["seed"] + 1000 * run["repeat"]
        model = _model(spec, vocab, seed)
        model.train()
        t0 = time.perf_counter()
        if rank == 0:
            reference = target is None
            res = _server({**spec, "cap_updates": spec["reference_updates"] if reference else spec["cap_updates"]},
                          run["sync"], model, held, target, workers)
            if reference:  # the reference run sets the target: its loss at its last evaluation
                target = res["evals"][-1][1]
            took.append(time.perf_counter() - t0)
            rec = {"key": key, **run, "workers": workers, "target_loss": target,
                   "wall_s": round(time.perf_counter() - t0, 4), **res}
            _append(out, rec)
            print(DONE_PREFIX + json.dumps({"key": key, "updates": res["updates"], "wall_s": rec["wall_s"]}),
                  flush=True)
        else:
            reader = Reader(train, run["sharding"], rank - 1, workers, spec["ctx"], spec["batch"],
                            seed + rank)
            _worker(spec, run["sync"], model, reader, group, workers)
        dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
