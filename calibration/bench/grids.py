"""What each mode measures.  Grids are sized for the time targets on a 2-core CPU
(`--quick` <= 3 min, `--full` <= 15 min) and grow on a GPU, where each point is cheap.

Every fit needs points on both sides of the cache (on the development VM, weights that fit in L3 run
several times faster) and a largest-size set to hold out, so each grid reaches past the L3.
"""

from __future__ import annotations

from calibration.rows import DISTRIBUTED_BENCHES, Step

MiB = 1 << 20
KiB = 1 << 10
MODES = ("tiny", "quick", "full")  # "tiny" is a test hook (MODELFOLIO_CALIB_GRID=tiny)


def _pow_sizes(lo: int, hi: int, factor: int) -> list[int]:
    sizes, s = [], lo
    while s <= hi:
        sizes.append(s)
        s *= factor
    return sizes


def gemm_steps(mode: str, device: str, l3_bytes: int) -> list[Step]:
    gpu = device == "cuda"
    dtypes = ["fp32", "bf16", "fp16"] if gpu else ["fp32", "bf16"]
    if mode == "tiny":
        return [Step("gemm", device, "fp32", {"m": s, "n": s, "k": s}) for s in (32, 64, 96, 128)]
    if gpu:
        squares = [256, 512, 1024, 2048, 4096, 6144, 8192] + ([12288, 16384] if mode == "full" else [])
        shaped = [(4096, 3 * h, h) for h in (1024, 4096, 8192)] + [(4096, h, 4 * h) for h in (1024, 4096)]
    elif mode == "full":
        squares = [64, 128, 256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096]
        shaped = [(512, 3072, 768), (2048, 4096, 1024), (512, 4096, 4096), (2048, 3072, 3072), (128, 8192, 2048)]
    else:
        # several compute-bound points between 2 and 7 GFLOP train the plateau, so no single mid-size square
        # decides it (on the development VM bf16 512^3 and 1024^3 switch between ~0.37 and ~1 TFLOP/s every
        # few seconds with the host's other tenants; 1280^3 and up vary less, 0.65-0.8)
        squares = [128, 256, 512, 1024, 1280, 1536, 2048]
        shaped = [(512, 3072, 768), (768, 3072, 1024), (1024, 2048, 1536), (2048, 4096, 1024)]
    # decode-like skinny GEMMs whose weights straddle the last-level cache (weights k·n·4 bytes)
    weight_cap = min(1024 * MiB, max(4 * l3_bytes, 256 * MiB))
    skinny = [(16, 4096, 4096), (16, 8192, 8192), (16, 16384, 16384)]
    skinny = [s for s in skinny if s[1] * s[2] * 4 <= weight_cap or gpu]
    if not gpu:
        # weight-streaming GEMMs with fewer rows at the largest weights: memory-bound points beyond the
        # last-level cache with few flops, so the fit trains on both cache tiers (held out are the largest
        # flops, among them the m=16 GEMM at the same weights)
        big = skinny[-1][1]
        skinny += [(4, big, big), (8, big, big)]
    steps = []
    for dtype in dtypes:
        for m, n, k in [(s, s, s) for s in squares] + shaped + skinny:
            steps.append(Step("gemm", device, dtype, {"m": m, "n": n, "k": k}))
    return steps


def block_steps(mode: str, device: str) -> list[Step]:
    if mode == "tiny":
        return [Step("block_fwd_bwd", device, "fp32", {"hidden": 64, "seq": 32, "batch": 2})]
    gpu = device == "cuda"
    if gpu:
        hiddens, shapes, dtypes = [1024, 2048, 4096], [(4, 512), (8, 1024), (8, 2048)], ["bf16", "fp32"]
    elif mode == "full":
        hiddens, shapes, dtypes = [256, 512, 768, 1024, 1536], [(1, 256), (4, 256), (4, 512)], ["fp32", "bf16"]
    else:
        hiddens, shapes, dtypes = [256, 512, 1024], [(1, 256), (4, 256)], ["fp32", "bf16"]
    flops_cap = float("inf") if gpu else 160e9  # about 2.5 s a repeat in fp32 on 2 cores
    steps = []
    for dtype in dtypes:
        for h in hiddens:
            for b, s in shapes:
                if 3 * 24 * b * s * h * h <= flops_cap:
                    steps.append(Step("block_fwd_bwd", device, dtype, {"hidden": h, "seq": s, "batch": b}))
    return steps


def moe_steps(mode: str, device: str) -> list[Step]:
    """One MoE FFN forward (calibration/bench/moe.py) over (tokens, experts, top_k, hidden, expert_ffn): few and
    many experts (32 to 1024 rows each), top-1 to top-4, so the one multiplier it fits (moe_gemm_eff) is checked
    across shapes; the held-out quarter (by expert FLOPs) holds the widest experts and the most tokens."""
    if mode == "tiny":
        return [Step("moe_layer", device, "fp32", {"tokens": 64, "experts": 4, "top_k": 2, "hidden": 32,
                                                   "expert_ffn": 64})]
    if device == "cuda":
        shapes = [(4096, 8, 2, 1024, 1024), (4096, 64, 8, 1024, 512), (8192, 16, 2, 2048, 1024),
                  (8192, 64, 4, 2048, 768), (16384, 8, 2, 2048, 2048), (16384, 32, 4, 4096, 1024),
                  (32768, 8, 2, 4096, 4096), (32768, 64, 8, 4096, 1536)]
        dtypes = ["bf16"]
    else:
        # 0.4 to 26 GFLOP of expert GEMMs: the largest ~0.06 s in fp32 on 2 cores of the development VM (AMX Xeon)
        shapes = [(256, 8, 2, 256, 512), (512, 8, 2, 256, 512), (512, 16, 4, 256, 256), (1024, 32, 4, 256, 256),
                  (1024, 8, 2, 512, 512), (2048, 8, 2, 512, 1024), (2048, 16, 2, 1024, 512), (4096, 16, 2, 1024, 512)]
        if mode == "full":
            shapes += [(4096, 64, 8, 512, 256), (8192, 16, 2, 1024, 1024)]
        dtypes = ["fp32", "bf16"]
    return [Step("moe_layer", device, dt, {"tokens": t, "experts": e, "top_k": k, "hidden": h, "expert_ffn": f})
            for dt in dtypes for t, e, k, h, f in shapes]


def message_sizes(mode: str, device: str) -> list[int]:
    if mode == "tiny":
        return [1 * KiB, 64 * KiB]
    if mode == "full":
        return _pow_sizes(KiB, 1024 * MiB if device == "cuda" else 128 * MiB, 2)
    # factor 4 through the latency-bound sizes, then factor 2, so the fit trains on several sizes where
    # bandwidth dominates (256 KiB, 512 KiB, 1 MiB, 2 MiB on a CPU) before the held-out largest quarter
    if device == "cuda":
        return _pow_sizes(KiB, 64 * KiB, 4) + _pow_sizes(256 * KiB, 64 * MiB, 2)
    # on a CPU, 1 MiB steps from 2 MiB, then 2 MiB steps from 8 MiB (3, 4, ... 8, 10, ... 16 MiB): the training
    # sizes (to 7 MiB) then pass one core's L2 and a VM's share of the L3 by several sizes each, which the
    # collectives' two-tier fits need to pin the rate beyond the cache from measurements, and the held-out quarter
    # is 8-16 MiB: below 32 MiB, where a lone rank's copy slowed to 1.8-2.7 GB/s on the AMD VM (probably fresh
    # pages: glibc maps allocations above its dynamic mmap threshold's ceiling, 32 MiB on 64-bit, mallopt(3))
    return (_pow_sizes(KiB, 64 * KiB, 4) + _pow_sizes(256 * KiB, 2 * MiB, 2)
            + [m * MiB for m in (3, 4, 5, 6, 7, 8, 10, 12, 14, 16)])


def ddp_shapes(mode: str, device: str) -> list[dict[str, int]]:
    if mode == "tiny":
        return [{"layers": 1, "hidden": 64, "seq": 16, "batch": 2}]
    if device == "cuda":
        return [{"layers": 4, "hidden": h, "seq": 512, "batch": 8} for h in (256, 512, 768, 1024)]
    # four shapes per world size: the fit holds out the largest two and still has two to fit
    shapes = [{"layers": 2, "hidden": 64, "seq": 64, "batch": 8}, {"layers": 2, "hidden": 128, "seq": 64, "batch": 8},
              {"layers": 2, "hidden": 192, "seq": 128, "batch": 8}, {"layers": 2, "hidden": 256, "seq": 128, "batch": 8}]
    if mode == "full":
        shapes.append({"layers": 4, "hidden": 384, "seq": 128, "batch": 8})
    return shapes


def distributed_steps(mode: str, device: str, world_sizes: list[int]) -> list[Step]:
    from calibration.bench.ddp import grad_bytes

    sizes = message_sizes(mode, device)
    steps = []
    for ws in world_sizes:
        for bench in ("all_reduce", "all_gather", "reduce_scatter", "broadcast"):
            steps += [Step(bench, device, "fp32", {"bytes": b}, ws) for b in sizes]
        if ws > 1:  # a world of one moves nothing across a link (a local copy all_gather already times)
            steps += [Step("all_to_all", device, "fp32", {"bytes": b}, ws) for b in sizes]
        ps_sizes = [b for b in sizes if b >= 4 * KiB] or sizes[-1:]
        for servers in sorted({1, ws // 2}):
            if 1 <= servers < ws:
                steps += [Step("ps_push_pull", device, "fp32", {"bytes": b, "servers": servers, "workers": ws - servers}, ws)
                          for b in ps_sizes]
        for shape in ddp_shapes(mode, device):
            params = {**shape, "grad_bytes": grad_bytes(shape["layers"], shape["hidden"])}
            steps.append(Step("ddp_step", device, "fp32", params, ws))
    return steps


def inference_steps(mode: str, device: str) -> list[Step]:
    from calibration.bench.inference import linear_path

    gpu = device == "cuda"
    dtypes = ["fp32", "bf16", "int8"]
    if mode == "tiny":
        hiddens, batches, dtypes = [64], [1], ["fp32", "int8"]
    elif gpu:
        hiddens, batches = [1024, 4096, 8192], [1, 16, 128] + ([512] if mode == "full" else [])
    elif mode == "full":
        hiddens, batches = [256, 512, 1024, 2048, 4096], [1, 4, 16, 64, 256]
    else:  # three sizes: batch-1 (GEMV) and batched points train, the largest four by flops are held out;
        # batch 256 lets the training points reach the batched plateau (bf16 still gains from 128 to 256)
        hiddens, batches = [512, 1024, 2048], [1, 16, 64, 128, 256]
    steps = [Step("infer_linear", device, dt, {"batch": b, "hidden": h, "layers": 4, "path": linear_path(device, dt)})
             for dt in dtypes for h in hiddens for b in batches]
    if mode == "tiny":
        model = {"layers": 1, "hidden": 64, "heads": 2, "vocab": 100}
        prompts, contexts, batches, dtypes = [8], [16], [1], ["fp32"]
    elif gpu:
        model = {"layers": 8, "hidden": 1024, "heads": 16, "vocab": 1000}
        prompts, contexts, batches, dtypes = [64, 128, 256, 512, 1024, 2048, 4096], [512, 2048, 8192], [1, 8, 64], ["bf16", "fp32"]
    elif mode == "full":
        model = {"layers": 4, "hidden": 512, "heads": 8, "vocab": 1000}
        prompts, contexts, batches, dtypes = [16, 32, 64, 128, 256, 512, 1024], [128, 512, 1024, 2048, 4096], [1, 4, 16], ["fp32", "bf16"]
    else:
        model = {"layers": 4, "hidden": 512, "heads": 8, "vocab": 1000}
        # up to 1024 tokens: the held-out quarter (512, 1024) leaves five prompts to train, 256 among them,
        # where the GEMMs have left the efficiency ramp that dominates the shortest prompts
        prompts, contexts, batches, dtypes = [16, 32, 64, 128, 256, 512, 1024], [128, 512, 2048], [1, 4, 8], ["fp32", "bf16"]
    for dt in dtypes:
        steps += [Step("prefill", device, dt, {**model, "batch": 1, "prompt": s}) for s in prompts]
        steps += [Step("decode", device, dt, {**model, "batch": b, "context": c}) for b in batches for c in contexts]
    return steps


def prune_steps(mode: str, device: str) -> list[Step]:
    if mode == "tiny":
        hiddens, batches, sparsities = [64], [2], [0.0, 0.5]
    elif device == "cuda":
        hiddens, batches, sparsities = [4096, 8192], [8, 64], [0.0, 0.25, 0.5, 0.7, 0.8, 0.9]
    elif mode == "full":
        hiddens, batches, sparsities = [1024, 2048, 4096], [8], [0.0, 0.25, 0.5, 0.7, 0.8, 0.9]
    else:
        hiddens, batches, sparsities = [2048], [8], [0.0, 0.25, 0.5, 0.7, 0.8, 0.9]
    variants = [("l1_unstructured", True), ("l1_unstructured", False), ("l2_structured", True),
                ("l2_structured", False), ("l2_structured_shrunk", False)]
    steps = [Step("prune_latency", device, "fp32", {"method": m, "sparsity": sp, "hidden": h, "batch": b, "hook": hook})
             for h in hiddens for b in batches for m, hook in variants for sp in sparsities]
    if mode == "quick" and device != "cuda":
        # the shrunk (physically smaller) layer at a half and a quarter of the size too: their weights fit
        # the L2 from the start, and the smallest are dominated by the call overhead, so the shrunk-layer
        # model trains on both sides of the cache and sees the overhead (masked variants need one size)
        steps += [Step("prune_latency", device, "fp32", {"method": "l2_structured_shrunk", "sparsity": sp,
                                                         "hidden": hiddens[0] // div, "batch": b, "hook": False})
                  for div in (2, 4) for b in batches for sp in sparsities]
    return steps


def plan(mode: str, devices: list[str], world_sizes: dict[str, list[int]], l3_bytes: int,
         only: set[str] | None = None, skip: set[str] | None = None) -> list[Step]:
    """Every step of a run, in execution order: compute (GEMM, block, MoE layer), distributed, inference, pruning;
    only the benches in `only` (when given), none of those in `skip`."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not one of {MODES}")
    steps: list[Step] = []
    for device in devices:
        steps += gemm_steps(mode, device, l3_bytes) + block_steps(mode, device) + moe_steps(mode, device)
    for device in devices:
        steps += distributed_steps(mode, device, world_sizes.get(device, []))
    for device in devices:
        steps += inference_steps(mode, device) + prune_steps(mode, device)
    if only:
        steps = [s for s in steps if s.bench in only]
    if skip:
        steps = [s for s in steps if s.bench not in skip]
    return steps


def is_distributed(step: Step) -> bool:
    return step.bench in DISTRIBUTED_BENCHES
