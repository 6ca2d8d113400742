"""Serving calibration check: a real small decoder served by a continuous-batching loop under a seeded Poisson
request stream, measured, against the serving family's prediction for a calibrated device (Scenario -> evaluate).

The loop (Orca's iteration-level scheduling, Yu et al. 2022, OSDI): at each step, waiting requests are admitted
up to the largest batch, and their prompts and one new token of every request already running go through the
model in one forward pass (Orca's selective batching: one token batch for the matrix products, attention per
request), the step the serving family times (simulator/serving/step.py); a step's tokens are delivered when it
ends. Two streams are run: one above the replica's capacity (the batch
stays full: output tokens/s is the replica's throughput at that batch, `serving.replica_output_tokens_per_s`), and
one at half the throughput measured (time to first token and time per output token, `serving.ttft_s` /
`serving.tpot_s`, predicted at that rate).

The loop is torch-free and runs on any `Engine` with an injected clock, so its bookkeeping is tested on a fake
engine with deterministic step times; `TorchEngine` is the TinyDecoder of calibration/bench/decoder.py with one
KV-cache slot per running request.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DEFAULT_PROFILE = Path(__file__).resolve().parents[1] / "simulator" / "data" / "profiles" / "cpu-reference.json"
TARGET_THROUGHPUT_ERR = 0.15  # issue 11 item 5: the profile predicts the measured throughput within 15%
SATURATE_X = 3.0  # the saturated stream arrives at this multiple of the predicted capacity (the queue never empties)
STEADY_X = 0.5    # the latency stream arrives at this share of the capacity measured by the saturated one


# ---------------------------------------------------------------- the request stream


def poisson_arrivals_s(requests_per_s: float, duration_s: float, seed: int) -> np.ndarray:
    """Arrival times in [0, duration_s) of a Poisson process: exponential gaps of mean 1/rate, seeded."""
    if not (requests_per_s > 0 and duration_s > 0):
        raise ValueError(f"requests_per_s ({requests_per_s}) and duration_s ({duration_s}) must be positive")
    rng = np.random.default_rng(seed)
    n = int(requests_per_s * duration_s + 10.0 * math.sqrt(requests_per_s * duration_s) + 10)
    times = np.cumsum(rng.exponential(1.0 / requests_per_s, n))
    while times[-1] < duration_s:  # never short of arrivals, however unlucky the draw
        times = np.concatenate([times, times[-1] + np.cumsum(rng.exponential(1.0 / requests_per_s, n))])
    return times[times < duration_s]


# ---------------------------------------------------------------- the continuous-batching loop


class Engine(Protocol):
    """A model with one KV-cache slot per running request; slots 0..running-1 are the running requests."""

    def step(self, lengths: np.ndarray, first_slot: int, count: int) -> None:
        """One iteration: one token for each of slots 0..len(lengths)-1, whose contexts hold `lengths` tokens, and
        the prompts of `count` new requests prefilled into slots first_slot.. (each yields its first token), in one
        forward pass."""

    def move(self, src: int, dst: int) -> None:
        """Copy slot src's cache into slot dst (keeps the running slots contiguous after a request ends)."""


@dataclass(frozen=True)
class Stream:
    prompt_tokens: int
    output_tokens: int
    max_batch: int
    duration_s: float   # the loop stops admitting and measuring at this time
    warmup_s: float     # tokens and requests before this time are left out of the figures


@dataclass
class Request:
    arrival_s: float
    first_token_s: float = math.nan
    last_token_s: float = math.nan
    tokens: int = 0


@dataclass(frozen=True)
class ServeResult:
    output_tokens_per_s: float  # tokens delivered in [warmup_s, end] / (end - warmup_s)
    ttft_median_s: float
    ttft_p90_s: float
    tpot_median_s: float        # per request: (last token - first token) / (output tokens - 1)
    tpot_p90_s: float
    mean_batch: float           # sequences decoding per decode step, over the measured window
    completed: int              # requests finished within the window (the latency figures are theirs)
    steps: int
    window_s: float
    busy_s: float = 0.0         # wall time inside steps (the rest is waiting for arrivals)
    busy_cpu_s: float = 0.0     # this process's CPU time inside steps (all threads)


def _q(values: Sequence[float], q: float) -> float:
    return float(np.quantile(values, q)) if len(values) else math.nan


def serve(engine: Engine, arrivals_s: np.ndarray, stream: Stream, clock: Callable[[], float] = time.perf_counter,
          sleep: Callable[[float], None] = time.sleep, cpu_clock: Callable[[], float] = time.process_time
          ) -> ServeResult:
    """Run the stream through the engine until `stream.duration_s` (clock time from the start); each step admits
    waiting requests (FIFO) up to max_batch and prefills them, decodes one token for every request admitted in an
    earlier step, then delivers the step's tokens at its end and retires the finished requests."""
    if stream.output_tokens < 1 or stream.prompt_tokens < 1 or stream.max_batch < 1:
        raise ValueError(f"prompt_tokens, output_tokens and max_batch must be at least 1: {stream}")
    if not 0 <= stream.warmup_s < stream.duration_s:
        raise ValueError(f"warmup_s ({stream.warmup_s}) must lie in [0, duration_s = {stream.duration_s})")
    requests = [Request(float(a)) for a in np.sort(arrivals_s)]
    running: list[Request] = []   # running[i] holds slot i
    next_arrival = 0
    t0 = clock()
    tokens_in_window, steps, batch_sum, decode_steps = 0, 0, 0, 0
    busy_s = busy_cpu_s = 0.0
    end_s = stream.duration_s
    while True:
        now = clock() - t0
        if now >= stream.duration_s:
            end_s = now
            break
        if not running and (next_arrival >= len(requests) or requests[next_arrival].arrival_s > now):
            if next_arrival >= len(requests):  # nothing more will arrive: idle to the end
                sleep(stream.duration_s - now)
                continue
            sleep(min(requests[next_arrival].arrival_s, stream.duration_s) - now)
            continue
        decoding = len(running)
        cpu0 = cpu_clock()
        admitted = []
        while (next_arrival < len(requests) and requests[next_arrival].arrival_s <= now
               and len(running) < stream.max_batch):
            admitted.append(requests[next_arrival])
            running.append(requests[next_arrival])
            next_arrival += 1
        lengths = np.array([stream.prompt_tokens + r.tokens for r in running[:decoding]], dtype=np.int64)
        engine.step(lengths, decoding, len(admitted))
        done_s = clock() - t0
        busy_s += done_s - now
        busy_cpu_s += cpu_clock() - cpu0
        steps += 1
        if done_s >= stream.warmup_s and decoding:
            batch_sum += decoding
            decode_steps += 1
        for r in admitted:
            r.first_token_s = done_s
        for r in running:
            r.tokens += 1
            r.last_token_s = done_s
        if stream.warmup_s <= done_s < stream.duration_s:
            tokens_in_window += len(running)
        finished = [i for i, r in enumerate(running) if r.tokens >= stream.output_tokens]
        for i in reversed(finished):  # fill each freed slot with the last running one
            last = len(running) - 1
            if i != last:
                engine.move(last, i)
                running[i] = running[last]
            running.pop()
    window = [r for r in requests if r.tokens >= stream.output_tokens and r.arrival_s >= stream.warmup_s
              and r.last_token_s < stream.duration_s]
    ttft = [r.first_token_s - r.arrival_s for r in window]
    tpot = [(r.last_token_s - r.first_token_s) / (stream.output_tokens - 1) for r in window
            if stream.output_tokens > 1]
    span = min(end_s, stream.duration_s) - stream.warmup_s
    return ServeResult(
        output_tokens_per_s=tokens_in_window / span, ttft_median_s=_q(ttft, 0.5), ttft_p90_s=_q(ttft, 0.9),
        tpot_median_s=_q(tpot, 0.5), tpot_p90_s=_q(tpot, 0.9),
        mean_batch=batch_sum / decode_steps if decode_steps else math.nan, completed=len(window), steps=steps,
        window_s=span, busy_s=busy_s, busy_cpu_s=busy_cpu_s)


# ---------------------------------------------------------------- the real decoder


class TorchEngine:
    """TinyDecoder (calibration/bench/decoder.py) with a preallocated KV cache of `slots` sequences, run with Orca's
    selective batching (Yu et al. 2022, OSDI, §3.2): one iteration's decode tokens and new prompts form one token
    batch for every matrix product (the weights are read once per step), and only attention is split: each
    decoding slot's new token attends to its own cached context (a mask over the longest running context, as an
    engine without paged attention does), each new prompt causally to itself."""

    def __init__(self, layers: int, hidden: int, heads: int, vocab: int, slots: int, max_ctx: int, dtype: str,
                 prompt_tokens: int, seed: int = 0) -> None:
        import torch

        from calibration.bench.decoder import TinyDecoder
        from calibration.timing import torch_dtype

        torch.manual_seed(seed)
        self.torch = torch
        self.model = TinyDecoder(layers, hidden, heads, vocab).to(dtype=torch_dtype(dtype)).eval()
        self.cache = self.model.new_cache(slots, max_ctx)
        self.heads, self.head_dim = heads, hidden // heads
        self.prompts = torch.randint(0, vocab, (slots, prompt_tokens))
        self.next_token = torch.zeros(slots, dtype=torch.long)
        self.positions = torch.arange(max_ctx)

    def step(self, lengths: np.ndarray, first_slot: int, count: int) -> None:
        torch = self.torch
        b, s, end = len(lengths), self.prompts.shape[1], first_slot + count
        if b == 0 and count == 0:
            return
        tokens = torch.cat([self.next_token[:b], self.prompts[first_slot:end].reshape(-1)])
        pos = torch.from_numpy(np.asarray(lengths, dtype=np.int64))  # a new token's position = its cached context
        longest = int(lengths.max()) + 1 if b else 0
        rows = torch.arange(b)
        mask = (self.positions[:longest][None, :] <= pos[:, None])[:, None, None, :]
        sdpa = torch.nn.functional.scaled_dot_product_attention

        def attention(qkv: Any, kc: Any, vc: Any) -> Any:
            """(tokens, 3·hidden) -> (tokens, hidden): the decode tokens against the cache, the prompts causally."""
            parts = []
            if b:
                q, k, v = qkv[:b].view(b, 1, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
                kc[rows, :, pos] = k[:, :, 0]
                vc[rows, :, pos] = v[:, :, 0]
                parts.append(sdpa(q, kc[:b, :, :longest], vc[:b, :, :longest], attn_mask=mask).reshape(b, -1))
            if count:
                q, k, v = qkv[b:].view(count, s, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
                kc[first_slot:end, :, :s] = k
                vc[first_slot:end, :, :s] = v
                parts.append(sdpa(q, k, v, is_causal=True).transpose(1, 2).reshape(count * s, -1))
            return torch.cat(parts) if len(parts) > 1 else parts[0]

        with torch.inference_mode():
            x = self.model.embed(tokens)
            for layer, (kc, vc) in zip(self.model.layers, self.cache, strict=True):
                x = x + layer.out(attention(layer.qkv(layer.ln1(x)), kc, vc))
                x = x + layer.ffn(layer.ln2(x))
            last = torch.cat([rows, b + s * torch.arange(1, count + 1) - 1])  # each sequence's newest token
            nxt = self.model.head(self.model.ln(x[last])).argmax(-1)  # greedy
            self.next_token[:b] = nxt[:b]
            self.next_token[first_slot:end] = nxt[b:]

    def move(self, src: int, dst: int) -> None:
        with self.torch.inference_mode():
            for k, v in self.cache:
                k[dst].copy_(k[src])
                v[dst].copy_(v[src])
            self.next_token[dst] = self.next_token[src]
            self.prompts[dst] = self.prompts[src]


# ---------------------------------------------------------------- the prediction (the public path)


@dataclass(frozen=True)
class CheckConfig:
    layers: int = 4
    hidden: int = 512
    heads: int = 8
    vocab: int = 1000
    dtype: str = "bf16"
    prompt_tokens: int = 128
    output_tokens: int = 64
    max_batch: int = 16
    stream_s: float = 10.0    # wall budget of each of the two streams
    warmup_s: float = 2.0     # left out at the start of each stream
    seed: int = 0


QUICK = CheckConfig(stream_s=9.0, warmup_s=1.5)
FULL = CheckConfig(stream_s=40.0, warmup_s=5.0)


def scenario_dict(cfg: CheckConfig, accelerator: str, requests_per_s: float) -> dict[str, Any]:
    """The decoder and the stream as a scenario: TinyDecoder is a GELU decoder (FFN 4 × hidden, no GQA); its input
    embedding is only looked up, so the weights a step streams are the tied-embedding count the model uses."""
    return {
        "model": {"layers": cfg.layers, "hidden": cfg.hidden, "heads": cfg.heads, "vocab": cfg.vocab, "mlp": "gelu"},
        "serving": {"accelerator": accelerator, "gpus_per_replica": 1, "prompt_tokens": cfg.prompt_tokens,
                    "output_tokens": cfg.output_tokens, "requests_per_s": requests_per_s, "peak_to_average": 1.0,
                    "batch": cfg.max_batch, "ttft_target_s": 3600.0, "tpot_target_s": 60.0},
    }


def profile_device(profile_path: Path) -> Any:
    """The calibrated device of a profile (simulator.device_profile.device_from_profile), as evaluate accepts it."""
    from simulator.device_profile import device_from_profile
    from simulator.profile import load_profile

    return device_from_profile(load_profile(profile_path))


def predict(cfg: CheckConfig, device: Any, requests_per_s: float) -> dict[str, float]:
    """serving.* figures of the decoder on `device` (a HardwareSpec) at this rate, through Scenario -> evaluate."""
    from simulator.evaluator import evaluate
    from simulator.scenario import Scenario

    devices = {device.id: device}
    plan = evaluate(Scenario.from_dict(scenario_dict(cfg, device.id, requests_per_s), devices), devices=devices)
    keys = ("serving.replica_output_tokens_per_s", "serving.ttft_s", "serving.tpot_s", "serving.batch_run")
    return {k: float(plan.figures[k].value) for k in keys}


# ---------------------------------------------------------------- measured against predicted


@dataclass(frozen=True)
class Comparison:
    quantity: str
    measured: float
    predicted: float
    stream: str

    @property
    def error(self) -> float:
        return self.predicted / self.measured - 1.0


@dataclass
class CheckReport:
    config: CheckConfig
    device: str
    threads: int
    saturated: ServeResult
    steady: ServeResult
    rates_per_s: dict[str, float]
    rows: list[Comparison] = field(default_factory=list)
    @property
    def cpu_share(self) -> dict[str, float]:
        """Per stream: this process's CPU time inside steps / (their wall time × threads); well below 1, other
        load took the cores (a thread waiting at a barrier spins, so an unloaded run reads close to 1)."""
        return {name: r.busy_cpu_s / (r.busy_s * self.threads) if r.busy_s > 0 else math.nan
                for name, r in (("saturated", self.saturated), ("steady", self.steady))}

    @property
    def throughput_error(self) -> float:
        return next(c.error for c in self.rows if c.quantity == "output tokens/s")

    def as_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "device": self.device, "threads": self.threads,
                "rates_per_s": self.rates_per_s, "saturated": asdict(self.saturated), "steady": asdict(self.steady),
                "rows": [{**asdict(c), "error": c.error} for c in self.rows], "cpu_share": self.cpu_share}

    def table(self) -> str:
        lines = [f"{'quantity':<30}{'stream':<12}{'measured':>12}{'predicted':>12}{'error':>9}"]
        for c in self.rows:
            lines.append(f"{c.quantity:<30}{c.stream:<12}{c.measured:>12.4g}{c.predicted:>12.4g}{c.error:>+9.1%}")
        return "\n".join(lines)


def run_check(cfg: CheckConfig, profile_path: Path = DEFAULT_PROFILE, engine: Engine | None = None,
              log: Callable[[str], None] = print, device: Any = None) -> CheckReport:
    """Measure both streams on the real decoder (or `engine`) and compare with the prediction for the profile's
    device (or `device`, that profile's device already built)."""
    from calibration.bench.registry import set_run_threads

    threads = set_run_threads()
    device = device or profile_device(profile_path)
    capacity = predict(cfg, device, 1.0)
    capacity_rps = capacity["serving.replica_output_tokens_per_s"] / cfg.output_tokens
    if not math.isfinite(capacity_rps):
        raise ValueError(f"the profile {profile_path} predicts no throughput for this decoder: {capacity}")
    if engine is None:
        engine = TorchEngine(cfg.layers, cfg.hidden, cfg.heads, cfg.vocab, cfg.max_batch,
                             cfg.prompt_tokens + cfg.output_tokens + 1, cfg.dtype, cfg.prompt_tokens, cfg.seed)
        _warm(engine, cfg)
    stream = Stream(cfg.prompt_tokens, cfg.output_tokens, cfg.max_batch, cfg.stream_s, cfg.warmup_s)
    rates = {"saturated": SATURATE_X * capacity_rps}
    log(f"saturated stream: {rates['saturated']:.3g} requests/s for {cfg.stream_s:g} s (batch up to {cfg.max_batch})")
    sat = serve(engine, poisson_arrivals_s(rates["saturated"], cfg.stream_s, cfg.seed), stream)
    # the latency stream at a share of the capacity measured, so that it stays below it however far off the
    # prediction is
    rates["steady"] = STEADY_X * sat.output_tokens_per_s / cfg.output_tokens
    log(f"steady stream: {rates['steady']:.3g} requests/s for {cfg.stream_s:g} s")
    st = serve(engine, poisson_arrivals_s(rates["steady"], cfg.stream_s, cfg.seed + 1), stream)
    steady = predict(cfg, device, rates["steady"])
    rows = [
        Comparison("output tokens/s", sat.output_tokens_per_s, capacity["serving.replica_output_tokens_per_s"],
                   "saturated"),
        Comparison("time to first token (s)", st.ttft_median_s, steady["serving.ttft_s"], "steady"),
        Comparison("time per output token (s)", st.tpot_median_s, steady["serving.tpot_s"], "steady"),
    ]
    return CheckReport(cfg, device.id, threads, sat, st, rates, rows)


def _warm(engine: TorchEngine, cfg: CheckConfig) -> None:
    """Untimed steps at the token counts met later (oneDNN builds its kernels per shape): every decode batch alone
    and with one or two new prompts."""
    engine.step(np.zeros(0, dtype=np.int64), 0, min(2, cfg.max_batch))
    for b in range(1, cfg.max_batch + 1):
        for count in range(min(2, cfg.max_batch - b) + 1):
            engine.step(np.full(b, cfg.prompt_tokens, dtype=np.int64), b, count)


def same_cpu(profile: dict[str, Any], here: dict[str, Any]) -> bool:
    """The profile was measured on a CPU like this one: same model name and ISA flags of interest."""
    env = profile.get("environment") or {}
    return (env.get("cpu_model") == here["cpu_model"] and sorted(env.get("cpu_flags") or []) == here["cpu_flags"]
            and not env.get("gpu_names"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m calibration serve-check",
                                description="Serve a small decoder under a request stream and compare with the "
                                            "profile's serving prediction.")
    p.add_argument("--profile", type=Path, default=DEFAULT_PROFILE, help="calibration profile (default: the shipped "
                   "CPU reference profile)")
    p.add_argument("--quick", action="store_true", help="two 9 s streams (under 30 s in all); default: two 40 s")
    ns = p.parse_args(argv)
    if not ns.profile.is_file():
        print(f"--profile {ns.profile}: no such file; give a profile.json written by python -m calibration run",
              file=sys.stderr)
        return 2
    from calibration.env import cpu_info
    from simulator.profile import ProfileError, load_profile

    try:
        if not same_cpu(load_profile(ns.profile), cpu_info()):
            print(f"warning: the profile {ns.profile} was measured on another CPU than this one "
                  f"({cpu_info()['cpu_model']}): calibrate this machine (python -m calibration run --quick) and pass "
                  "its profile.json", file=sys.stderr)
        device = profile_device(ns.profile)
    except (ProfileError, ValueError) as exc:  # not a profile, or one without the GEMM fit a device needs
        print(f"--profile {ns.profile}: {exc}", file=sys.stderr)
        return 2
    report = run_check(QUICK if ns.quick else FULL, ns.profile, device=device)
    print(f"device {report.device}, {report.threads} threads, {report.config.dtype}, decoder L{report.config.layers}"
          f"-h{report.config.hidden}, prompt {report.config.prompt_tokens}, output {report.config.output_tokens}")
    print(f"saturated: mean batch {report.saturated.mean_batch:.3g}, {report.saturated.steps} steps; steady: mean "
          f"batch {report.steady.mean_batch:.3g}, {report.steady.completed} requests")
    st = report.steady
    print(f"measured P90: time to first token {st.ttft_p90_s:.4g} s, time per output token {st.tpot_p90_s:.4g} s "
          f"(steady); CPU share of {report.threads} threads: "
          + ", ".join(f"{k} {v:.0%}" for k, v in report.cpu_share.items()))
    print(report.table())
    if min(report.cpu_share.values()) < 0.9:
        print("other load on this machine took part of the CPUs: the measurement is slowed; rerun on an idle one")
    ok = abs(report.throughput_error) <= TARGET_THROUGHPUT_ERR
    print(f"throughput error {report.throughput_error:+.1%} (target within {TARGET_THROUGHPUT_ERR:.0%}): "
          + ("met" if ok else "MISSED"))
    return 0
