"""Every constant of the compression model, in one place, each with its source (fitted ones: fitted.json)."""

from __future__ import annotations

import json
from pathlib import Path

WEIGHT_BITS = (16, 8, 6, 5, 4, 3, 2, 1)
ACT_BITS = (16, 8, 4)
KV_BITS = (16, 8, 4)
FORMATS = ("int", "fp")
# floating-point widths that exist: FP16, FP8 (E4M3/E5M2), FP6 (E2M3/E3M2) and FP4 (E2M1): OCP Microscaling
# Formats (MX) v1.0 specification, 2023, §5
FP_BITS = (16, 8, 6, 4)
QUANT_METHODS = ("none", "rtn", "gptq", "awq", "smoothquant", "qat")
PRUNING_METHODS = ("none", "magnitude", "wanda", "sparsegpt", "structured")
SPARSITY_PATTERNS = ("unstructured", "2:4", "4:8", "rows")

# Kumar et al. 2024 (arXiv 2411.04330) App. K Table 2: γ_w, γ_a, γ_kv of eq. 4 (low-precision training)
KUMAR_QAT_GAMMA = (2.6745, 2.2102, 0.9578)
# Frantar et al. 2023 (arXiv 2309.08520) eq. 1, T5/C4 fit of the official notebook (jaxpruner bigsparse)
FRANTAR_T5 = {"a_S": 0.5678, "b_S": 0.7216, "c_S": 1.5227, "b_N": 0.2451}

# Assumed (not fitted: no published table in the repository pins them); their spread is the loss_scale input's.
LAW = {
    # per-token activation rounding meets outlier channels (Dettmers et al. 2022, LLM.int8(), §3): 2 bits worse
    # than weights; SmoothQuant (Xiao et al. 2023) migrates the outliers into the weights: as good as weights
    "act_offset": -2.0,
    "act_offset_smoothquant": 0.0,
    # KV cache quantized per token/head (KIVI, Liu et al. 2024: 2-bit KV near lossless): 1 bit better
    "kv_offset": 1.0,
}
# Pruning method offsets in bits: magnitude, wanda and sparsegpt are fitted (fitted.json, `prune_offset_<method>`,
# on benchmarks/data/pruning_ppl.csv). Structured rows: assumed, not fitted (no published one-shot row-pruning
# table in the repository): the plain noise-energy rule (their energy share is already S).
PRUNE_OFFSET_ASSUMED_BITS = {"structured": 0.0}

# Storage: one fp16 scale per group; integer formats also store a zero point at the weight's width
# (GPTQ/AutoGPTQ `qzeros` packing); 2:4 keeps a 2-bit index per kept value (NVIDIA A100 whitepaper 2020,
# "Fine-grained structured sparsity"; Mishra et al. 2021, arXiv 2104.08378), 4:8 a 3-bit one (log2 8);
# unstructured sparsity a one-bit presence mask per weight (bitmap encoding), used when smaller than dense.
SCALE_BITS = 16.0

# Speed model reference point (stated, not fitted): a decode step of one sequence at 2,048 tokens of context
# (single-stream latency), a prefill of one 2,048-token prompt.
DECODE_BATCH = 1
CONTEXT_TOKENS = 2048

FITTED_PATH = Path(__file__).with_name("fitted.json")


def load_fitted(path: Path = FITTED_PATH) -> dict:
    """The fitted constants of eq. 2 and the method offsets, with how they were fit (benchmarks/compression_quality.py --fit)."""
    return json.loads(path.read_text(encoding="utf-8"))
