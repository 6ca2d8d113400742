"""One process of a training run across test hosts (benchmarks/multihost_predict.py): a small GPT-style causal
language model trained on random tokens in fp32, one rank per host, timed step by step.

Modes (`--mode`):
  local  one worker alone: forward, backward and its own Adam step, no communication (the compute-only row)
  ddp    torch DistributedDataParallel over gloo (world 2): bucketed all-reduce overlapping the backward, Adam on
         every worker (Li et al. 2020, PyTorch Distributed, VLDB)
  ps     synchronous parameter server (world 3: workers 0 and 1, server 2; Li et al. 2014, OSDI): each step every
         worker pushes its whole gradient and waits; the server averages the gradients of all workers, takes the
         Adam step and sends the new weights to each worker
  async  asynchronous SGD through the same server: the server applies each worker's gradient as it arrives and
         sends that worker the weights of the moment, with no barrier between workers (Dean et al. 2012, Downpour)

Each process writes one JSON file (`--out`): its per-step times after warm-up, the model's parameter count and
gradient bytes and, for DDP, its buckets' bytes in the order it reduces them (the last waits for the end of the
backward), so the prediction reads the configuration the run had rather than guessing it.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F  # noqa: N812

SERVER = 2  # the server's rank in ps and async runs (workers are 0 and 1)
WORKERS = (0, 1)


class Block(nn.Module):
    """Pre-norm transformer block: causal multi-head self-attention (fused, scaled_dot_product_attention) and a
    GELU MLP of 4 × hidden, as GPT-2 (Radford et al. 2019) lays them out, without dropout."""

    def __init__(self, hidden: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv, self.proj = nn.Linear(hidden, 3 * hidden), nn.Linear(hidden, hidden)
        self.fc, self.out = nn.Linear(hidden, 4 * hidden), nn.Linear(4 * hidden, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, s, h)
        x = x + self.proj(y)
        return x + self.out(F.gelu(self.fc(self.ln2(x))))


class TinyGPT(nn.Module):
    """Token embedding tied to the output layer (GPT-2), `layers` blocks and a final norm; no position embedding
    (causal attention orders the tokens by itself: Haviv et al. 2022), so every parameter is one the simulator
    counts."""

    def __init__(self, layers: int, hidden: int, heads: int, vocab: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        # GPT-2's initialisation (nanoGPT: std 0.02); nn.Embedding's N(0, 1) makes the tied output layer's logits
        # ~16 wide, whose softmax gradients underflow to subnormal floats within ~10 steps: 5x slower arithmetic
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(Block(hidden, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(hidden)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x) @ self.embed.weight.T


def _model(ns: argparse.Namespace) -> TinyGPT:
    torch.manual_seed(0)  # the same initial weights in every process (the server's copy included)
    return TinyGPT(ns.layers, ns.hidden, ns.heads, ns.vocab)


def _batches(ns: argparse.Namespace, rank: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A fresh batch of random tokens for every step, drawn before the clock starts."""
    gen = torch.Generator().manual_seed(1000 + rank)
    out = []
    for _ in range(ns.warmup + ns.steps):
        tokens = torch.randint(0, ns.vocab, (ns.batch, ns.seq + 1), generator=gen)
        out.append((tokens[:, :-1], tokens[:, 1:]))
    return out


def _backward(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, vocab: int) -> None:
    logits = model(inputs)
    F.cross_entropy(logits.reshape(-1, vocab), targets.reshape(-1)).backward()


def _flat_grads(params: list[nn.Parameter], out: torch.Tensor) -> None:
    torch.cat([p.grad.reshape(-1) for p in params], out=out)


def _set_grads(params: list[nn.Parameter], flat: torch.Tensor) -> None:
    i = 0
    for p in params:
        p.grad = flat[i:i + p.numel()].view_as(p).clone()
        i += p.numel()


def _timed_steps(step: Any, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
    """`step(inputs, targets)` once per batch, each timed."""
    times = []
    for inputs, targets in batches:
        t0 = time.perf_counter()
        step(inputs, targets)
        times.append(time.perf_counter() - t0)
    return times


def run_local(ns: argparse.Namespace) -> dict[str, Any]:
    model = _model(ns)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        _backward(model, inputs, targets, ns.vocab)
        opt.step()

    return {"times_s": _timed_steps(step, _batches(ns, ns.rank))}


def run_ddp(ns: argparse.Namespace) -> dict[str, Any]:
    from torch.nn.parallel import DistributedDataParallel

    ddp = DistributedDataParallel(_model(ns))
    opt = torch.optim.Adam(ddp.parameters(), lr=1e-4)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        _backward(ddp, inputs, targets, ns.vocab)  # returns once every bucket's all-reduce is done
        opt.step()

    times = _timed_steps(step, _batches(ns, ns.rank))
    logged = ddp._get_ddp_logging_data()
    buckets = [int(b) for b in str(logged.get("bucket_sizes", "")).split(",") if b.strip()]
    return {"times_s": times, "bucket_bytes": buckets, "rebuilt_buckets": bool(logged.get("has_rebuilt_buckets"))}


def _pair_groups() -> dict[int, Any]:
    """One process group per worker and the server: the server's threads then never share a gloo context."""
    return {w: dist.new_group([w, SERVER]) for w in WORKERS}


def run_ps_worker(ns: argparse.Namespace, groups: dict[int, Any]) -> dict[str, Any]:
    model = _model(ns)
    params = list(model.parameters())
    n = sum(p.numel() for p in params)
    grads, weights = torch.empty(n), torch.empty(n)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        for p in params:
            p.grad = None
        _backward(model, inputs, targets, ns.vocab)
        _flat_grads(params, grads)
        dist.send(grads, SERVER, group=groups[ns.rank])  # push the gradient
        dist.recv(weights, SERVER, group=groups[ns.rank])  # pull the weights (sync: after every worker's push)
        nn.utils.vector_to_parameters(weights, params)

    return {"times_s": _timed_steps(step, _batches(ns, ns.rank))}


def run_server(ns: argparse.Namespace, groups: dict[int, Any]) -> dict[str, Any]:
    model = _model(ns)
    params = list(model.parameters())
    opt = torch.optim.Adam(params, lr=1e-4)
    n = sum(p.numel() for p in params)
    total = ns.warmup + ns.steps
    if ns.mode == "ps":
        inbox = {w: torch.empty(n) for w in WORKERS}
        weights = torch.empty(n)
        for _ in range(total):
            for work in [dist.irecv(inbox[w], w, group=groups[w]) for w in WORKERS]:
                work.wait()
            _set_grads(params, sum(inbox.values()) / len(WORKERS))  # the synchronous average
            opt.step()
            weights.copy_(nn.utils.parameters_to_vector(params))
            for work in [dist.isend(weights, w, group=groups[w]) for w in WORKERS]:
                work.wait()
        return {}
    lock = threading.Lock()

    def serve(w: int) -> None:  # async: one worker's pushes, applied as they come (Downpour SGD)
        grad, weights = torch.empty(n), torch.empty(n)
        for _ in range(total):
            dist.recv(grad, w, group=groups[w])
            with lock:
                _set_grads(params, grad)
                opt.step()
                weights.copy_(nn.utils.parameters_to_vector(params))
            dist.send(weights, w, group=groups[w])

    threads = [threading.Thread(target=serve, args=(w,)) for w in WORKERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("local", "ddp", "ps", "async"), required=True)
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--init", default="", help="tcp://HOST:PORT of rank 0's store (not for local)")
    for name, default in (("layers", 4), ("hidden", 256), ("heads", 4), ("vocab", 4096), ("seq", 128),
                          ("batch", 8), ("warmup", 3), ("steps", 12), ("threads", 1)):
        ap.add_argument(f"--{name}", type=int, default=default)
    ap.add_argument("--out", type=Path, required=True)
    ns = ap.parse_args(argv)
    torch.set_num_threads(ns.threads)
    model = _model(ns)
    n_params = sum(p.numel() for p in model.parameters())
    t0 = time.perf_counter()
    if ns.mode == "local":
        result = run_local(ns)
    else:
        world = 2 if ns.mode == "ddp" else 3
        dist.init_process_group("gloo", init_method=ns.init, rank=ns.rank, world_size=world)
        if ns.mode == "ddp":
            result = run_ddp(ns)
        else:
            groups = _pair_groups()
            result = run_server(ns, groups) if ns.rank == SERVER else run_ps_worker(ns, groups)
        dist.barrier()
        dist.destroy_process_group()
    result.update(mode=ns.mode, rank=ns.rank, params=n_params, grad_bytes=4 * n_params, warmup=ns.warmup,
                  threads=torch.get_num_threads(), wall_s=time.perf_counter() - t0, pid=os.getpid())
    ns.out.write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
