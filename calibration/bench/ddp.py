"""Real DistributedDataParallel steps of a small transformer LM on random tokens.

Per repeat (after a barrier) we time a DDP step, then the same step under `no_sync()` (compute
only); then an all_reduce of the same gradient bytes alone.  The overlap fraction of the model
T = T_comp + (1 − η_ovl)·T_comm (Li et al. 2020, PyTorch Distributed) follows as
η_ovl = 1 − (t_step − t_compute)/t_allreduce, clipped to [0, 1].
"""

from __future__ import annotations

import gc

import torch
import torch.distributed as dist
from torch import nn

from calibration.bench.base import Measurement
from calibration.bench.collectives import device_name, timed
from calibration.rows import Step, summarize
from calibration.timing import TimingConfig, torch_dtype

VOCAB = 1000


class TinyLM(nn.Module):
    def __init__(self, layers: int, hidden: int, vocab: int = VOCAB) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, hidden)
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(hidden, max(1, hidden // 64), 4 * hidden, dropout=0.0,
                                       batch_first=True, norm_first=True)
            for _ in range(layers)
        )
        self.head = nn.Linear(hidden, vocab)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        seq = tokens.shape[1]
        mask = torch.triu(torch.full((seq, seq), float("-inf"), device=tokens.device), diagonal=1)
        x = self.embed(tokens)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True)
        return self.head(x)


def tinylm_params(layers: int, hidden: int, vocab: int = VOCAB) -> int:
    """TinyLM's trainable parameters, counted by layer: the embedding (vocab x hidden); per encoder layer the
    attention's in-projection (3h x h + 3h) and out-projection (h x h + h), the MLP (h x 4h + 4h, 4h x h + h) and two
    LayerNorms (2h each): 12h^2 + 13h; the head (hidden x vocab + vocab). Arithmetic, not a model on the meta
    device: initialising one there imports torch._dynamo (2-4 s of every plan; tests check the count against the
    module)."""
    h = hidden
    return vocab * h + layers * (12 * h * h + 13 * h) + h * vocab + vocab


def grad_bytes(layers: int, hidden: int, vocab: int = VOCAB, dtype: str = "fp32") -> int:
    """Gradient bytes of TinyLM (one gradient per trainable parameter)."""
    return tinylm_params(layers, hidden, vocab) * (torch.finfo(torch_dtype(dtype)).bits // 8)


def ddp_step(step: Step, cfg: TimingConfig) -> Measurement:
    from torch.nn.parallel import DistributedDataParallel

    device = device_name(step)
    layers, hidden, seq, batch = (int(step.params[x]) for x in ("layers", "hidden", "seq", "batch"))
    torch.manual_seed(1234 + dist.get_rank())
    model = TinyLM(layers, hidden).to(device)
    ddp = DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if device.startswith("cuda") else None)
    opt = torch.optim.SGD(ddp.parameters(), lr=1e-3)
    tokens = torch.randint(0, VOCAB, (batch, seq + 1), device=device)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def train_step() -> None:
        opt.zero_grad(set_to_none=True)
        logits = ddp(inputs)
        nn.functional.cross_entropy(logits.reshape(-1, VOCAB), targets.reshape(-1)).backward()
        opt.step()

    def compute_step() -> None:
        with ddp.no_sync():
            train_step()

    try:
        repeats = min(cfg.repeats, 5) if device == "cpu" else cfg.repeats  # a CPU step takes up to ~1 s
        fixed = TimingConfig(repeats=repeats, warmup=1, max_s=cfg.max_s, min_repeats=repeats)
        step_s: list[float] = []
        compute_s: list[float] = []
        for _ in range(repeats):  # interleaved, so drift on a shared machine hits both alike
            step_s += timed(train_step, device, TimingConfig(1, 1 if not step_s else 0, cfg.max_s, 1))
            compute_s += timed(compute_step, device, TimingConfig(1, 1 if not compute_s else 0, cfg.max_s, 1))
        nbytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
        flat = torch.rand(nbytes // 4, device=device)
        allreduce_s = timed(lambda: dist.all_reduce(flat), device, fixed)
    finally:
        opt = ddp = model = None  # the closures above hold these names: drop the objects, not the names
        gc.collect()
        dist.barrier()  # free DDP before destroy_process_group, or exit may crash
    t_step, t_comp, t_ar = summarize(step_s)[0], summarize(compute_s)[0], summarize(allreduce_s)[0]
    overlap = None
    if t_step is not None and t_comp is not None and t_ar:
        overlap = min(1.0, max(0.0, 1.0 - (t_step - t_comp) / t_ar))
    tokens_per_step = batch * seq * dist.get_world_size()
    n_params = nbytes // 4
    return Measurement(
        step_s, flops=6.0 * n_params * tokens_per_step / dist.get_world_size(), bytes=float(nbytes),
        extra={"compute_s": t_comp, "allreduce_s": t_ar, "overlap_fraction": overlap,
               "compute_times_s": compute_s, "allreduce_times_s": allreduce_s,
               "tokens_per_step": tokens_per_step, "params_count": n_params,
               "backend": dist.get_backend(), "optimizer": "SGD"},
    )
