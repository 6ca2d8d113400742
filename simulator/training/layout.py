"""Pipeline stages and micro-batches laid out as published runs lay them out.

Megatron-LM's `--decoder-first-pipeline-num-layers` / `--decoder-last-pipeline-num-layers` give the first
and the last pipeline stage their own number of transformer blocks (the first stage also runs the
embedding, the last the logits and the loss), and a global batch need not be a multiple of micro-batch ×
data-parallel width. Every function takes scalars or numpy arrays alike and works on all rows at once.
"""

from dataclasses import dataclass

import numpy as np

# window of middle-stage sizes searched around the continuous optimum, largest first: at equal pacing
# time the planner prefers fuller middle stages, hence lighter ends (the first stage holds the most
# micro-batches in flight)
_K_OFFSETS = np.array([2.0, 1.0, 0.0, -1.0, -2.0])


@dataclass(frozen=True)
class StageLayout:
    first: np.ndarray          # blocks on stage 0 (all blocks when pp == 1)
    last: np.ndarray           # blocks on stage pp-1 (all blocks when pp == 1)
    middle: np.ndarray         # blocks on the largest middle stage, ⌈rest/(pp-2)⌉; 0 when pp <= 2
    pacing_layers: np.ndarray  # blocks on the stage slowest per micro-batch
    pacing_first: np.ndarray   # that stage is the first one (runs the embedding)
    pacing_last: np.ndarray    # that stage is the last one (runs the logits and the loss)
    memory_layers: np.ndarray  # blocks on the stage holding the most activation memory


def middle_stage_layers(layers, pp, first, last):
    """Blocks on the largest of the pp-2 middle stages: they share the rest as evenly as possible."""
    rest = np.maximum(np.asarray(layers, np.float64) - first - last, 0.0)
    return np.where(pp > 2, np.ceil(rest / np.maximum(pp - 2.0, 1.0)), 0.0)


def stage_times(layers, pp, first, last, layer_s, embed_s=0.0, head_s=0.0):
    """Per-micro-batch time of the first stage, the slowest middle stage (0 if none) and the last stage.

    A stage's time is its blocks × `layer_s`, plus `embed_s` on the first stage and `head_s` (logits and
    loss) on the last; with one stage both go to it.
    """
    one = np.asarray(pp) <= 1
    t_first = first * layer_s + embed_s + np.where(one, head_s, 0.0)
    t_middle = middle_stage_layers(layers, pp, first, last) * layer_s
    t_last = last * layer_s + head_s + np.where(one, embed_s, 0.0)
    return t_first, t_middle, t_last


def _slowest(t_first, t_middle, t_last):
    return np.maximum(np.maximum(t_first, t_middle), t_last)


def _search(L, p, f_in, l_in, x, e, h):
    """Balanced (first, last) for 1-D rows with pp >= 2 and at least one end free (see `stage_split`)."""
    f_given, l_given = np.isfinite(f_in), np.isfinite(l_in)
    L, pc, xc, ec, hc, fi, li = (a[:, None] for a in (L, p, x, e, h, f_in, l_in))
    p2 = np.maximum(pc - 2.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # both ends free. Continuous relaxation (blocks as reals, >= 1 per end): T solves
        # Σ_stages max(1, (T - overhead)/x) = L; each end is either at one block or on the level T
        t_free = np.minimum(np.minimum((L * xc + ec + hc) / pc, ((L - 1.0) * xc + hc) / (pc - 1.0)),
                            np.minimum(((L - 1.0) * xc + ec) / (pc - 1.0), (L - 2.0) * xc / p2))
        t_free = np.maximum(t_free, xc + np.maximum(ec, hc))
        # the optimum has middle stages of k = ⌊T*/x⌋ blocks with T* within a block of the relaxation;
        # for each k the two ends share the s blocks left as a two-stage pipeline (floor or ceil of the
        # crossing of f·x + e and (s - f)·x + h)
        k = np.clip(np.floor(t_free / xc) + _K_OFFSETS, 1.0, np.maximum(L - 2.0, 1.0))
        s = np.where(pc > 2, np.maximum(L - p2 * k, 2.0), L)
        f_cross = (s * xc + hc - ec) / (2.0 * xc)
        s = np.concatenate([s, s], axis=-1)
        f_free = np.clip(np.concatenate([np.floor(f_cross), np.ceil(f_cross)], axis=-1), 1.0, s - 1.0)
        l_free = s - f_free
        # one end given (pp > 2): middle stages of k blocks and the free end of max(1, rest - (p-2)·k)
        k_last = np.maximum(np.floor((L - fi + hc / xc) / (pc - 1.0)) + _K_OFFSETS, 1.0)
        l_from_first = np.maximum(L - fi - p2 * k_last, 1.0)
        k_first = np.maximum(np.floor((L - li + ec / xc) / (pc - 1.0)) + _K_OFFSETS, 1.0)
        f_from_last = np.maximum(L - li - p2 * k_first, 1.0)
    one = l_given[:, None] | f_given[:, None]
    f_cand = np.where(one, np.where(f_given[:, None], fi, f_from_last), f_free[:, :_K_OFFSETS.size])
    l_cand = np.where(one, np.where(f_given[:, None], l_from_first, li), l_free[:, :_K_OFFSETS.size])
    f_cand = np.concatenate([f_cand, np.where(one, f_cand, f_free[:, _K_OFFSETS.size:])], axis=-1)
    l_cand = np.concatenate([l_cand, np.where(one, l_cand, l_free[:, _K_OFFSETS.size:])], axis=-1)
    t = _slowest(*stage_times(L, pc, f_cand, l_cand, xc, ec, hc))
    best = np.argmin(np.where(np.isnan(t), np.inf, t), axis=-1)[:, None]
    return (np.take_along_axis(f_cand, best, axis=-1)[:, 0], np.take_along_axis(l_cand, best, axis=-1)[:, 0])


def stage_split(layers, pp, first_stage_layers=np.nan, last_stage_layers=np.nan, layer_s=1.0, embed_s=0.0,
                head_s=0.0, interleave=1.0):
    """(first, last): blocks on the first and the last pipeline stage.

    Given values (not NaN) are kept; with pp == 2 the other end gets the rest. Left out: an even split
    when pp divides the layers (layers/pp each), otherwise the split whose slowest stage is fastest,
    found by comparing a few candidates per row around the continuous optimum (all such rows at once).
    pp == 1: one stage of all blocks. With `interleave` v > 1 and both ends left out, every stage holds a
    multiple of v blocks, as Megatron-LM requires of virtual stages: the same search in chunks of v blocks.
    """
    arrays = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in
                                   (layers, pp, first_stage_layers, last_stage_layers, layer_s, embed_s, head_s,
                                    interleave)))
    shape = arrays[0].shape
    blocks, p, f_in, l_in, x_block, e, h, v = (a.ravel() for a in arrays)
    f_given, l_given = np.isfinite(f_in), np.isfinite(l_in)
    chunk = np.where((v > 1) & ~f_given & ~l_given & (np.fmod(blocks, v) == 0), v, 1.0)
    n_layers, x = blocks / chunk, x_block * chunk
    with np.errstate(divide="ignore", invalid="ignore"):
        even = n_layers / p
    divides = np.fmod(n_layers, p) == 0
    first = np.where(f_given, f_in, np.where(l_given & (p == 2), n_layers - l_in, even))
    last = np.where(f_given & (p == 2), n_layers - f_in, np.where(l_given, l_in, even))
    # rows left to the planner: pp > 1, an end free and not (both free and pp divides the layers)
    plan = np.flatnonzero((p > 1) & ~((f_given | l_given) & (p == 2)) & ~(f_given & l_given)
                          & ~(~f_given & ~l_given & divides))
    if plan.size:
        first[plan], last[plan] = _search(*(a[plan] for a in (n_layers, p, f_in, l_in, x, e, h)))
    first = np.where(p <= 1, blocks, first * chunk)
    last = np.where(p <= 1, blocks, last * chunk)
    return first.reshape(shape), last.reshape(shape)


def stage_activations(pp, first, middle, last, microbatches, layer_bytes, head_bytes=0.0):
    """Activation bytes held on the first, the fullest middle (0 if none) and the last stage under 1F1B."""
    # Narayanan et al. 2021 §2.2 (1F1B): stage i (0-based) keeps min(p - i, m) micro-batches in flight
    a_first = np.minimum(pp, microbatches) * first * layer_bytes + np.where(pp <= 1, head_bytes, 0.0)
    a_middle = np.where(pp > 2, np.minimum(pp - 1.0, microbatches) * middle * layer_bytes, 0.0)
    a_last = np.minimum(1.0, microbatches) * last * layer_bytes + head_bytes
    return a_first, a_middle, a_last


def _pick(a_first, a_middle, a_last, first, middle, last):
    """Value of the largest of three stages; ties go to the last, then the first stage."""
    return np.where(a_last >= np.maximum(a_first, a_middle), last, np.where(a_first >= a_middle, first, middle))


def stage_layout(layers, pp, first_stage_layers=np.nan, last_stage_layers=np.nan, layer_s=1.0, embed_s=0.0,
                 head_s=0.0, microbatches=1.0, layer_bytes=1.0, head_bytes=0.0, interleave=1.0) -> StageLayout:
    """Split the blocks over pp stages (see `stage_split`) and find the pacing and the fullest stage.

    `layer_s`, `embed_s`, `head_s`: per-micro-batch time of one block, the embedding (first stage) and
    the logits + loss (last stage); `microbatches`, `layer_bytes`, `head_bytes`: micro-batches per step,
    activation bytes of one block and of the logits for one micro-batch, to find the stage holding most;
    `interleave`: virtual stages per GPU (the planner's split keeps each stage a multiple of it).
    """
    first, last = stage_split(layers, pp, first_stage_layers, last_stage_layers, layer_s, embed_s, head_s,
                              interleave)
    pp = np.asarray(pp, np.float64)
    middle = middle_stage_layers(layers, pp, first, last)
    t_first, t_middle, t_last = stage_times(layers, pp, first, last, layer_s, embed_s, head_s)
    pacing_last = (t_last >= np.maximum(t_first, t_middle)) | (pp <= 1)
    pacing_first = (~pacing_last & (t_first >= t_middle)) | (pp <= 1)
    pacing = np.where(pacing_last, last, np.where(pacing_first, first, middle))
    a = stage_activations(pp, first, middle, last, microbatches, layer_bytes, head_bytes)
    return StageLayout(first, last, middle, pacing, pacing_first, pacing_last, _pick(*a, first, middle, last))


def batch_layout(global_batch, dp, micro_batch):
    """(m, r, batch_idle_fraction) on the data-parallel rank that paces the step.

    The ranks get ⌊B/dp⌋ or ⌈B/dp⌉ sequences; the one with ⌈B/dp⌉ runs m = ⌈⌈B/dp⌉/b⌉ micro-batches,
    the last of r = ⌈B/dp⌉ - (m-1)·b sequences (r = b when b divides). batch_idle_fraction =
    1 - B/(dp·m·b), the share of micro-batch slots left empty; m = B/(dp·b) and 0 idle when it divides.
    """
    per_rank = np.ceil(np.asarray(global_batch, np.float64) / dp)
    m = np.ceil(per_rank / micro_batch)
    r = per_rank - (m - 1.0) * micro_batch
    return m, r, 1.0 - global_batch / (dp * m * micro_batch)


def interleave_legal(layers, pp, first, last, interleave, stages_given=False):
    """Whether `interleave` virtual stages per GPU are legal for the split (first, last) as Megatron-LM requires.

    Interleaving needs pp > 1 and the blocks of every stage divisible by the interleave: the first and the last
    stage (`--decoder-first/last-pipeline-num-layers` must be divisible by the virtual pipeline size) and the
    middle stages, which share the rest evenly. Left to the planner (`stages_given` False), the planner's split
    keeps every stage a multiple of the interleave where it can (`planner_can_interleave`). One virtual stage
    (no interleaving) is always legal.
    """
    v = np.asarray(interleave, np.float64)
    pp = np.asarray(pp, np.float64)
    layers = np.asarray(layers, np.float64)
    rest = layers - first - last
    middle_ok = (pp <= 2) | (np.fmod(rest, np.maximum(pp - 2.0, 1.0) * v) == 0)
    split_ok = (np.fmod(first, v) == 0) & (np.fmod(last, v) == 0) & middle_ok
    return (v == 1) | ((pp > 1) & np.where(stages_given, split_ok, planner_can_interleave(layers, pp, v)))


def planner_can_interleave(layers, pp, interleave):
    """Whether the planner's split can give every one of pp stages a multiple of `interleave` blocks (at least
    one chunk each): the layers are a multiple of the interleave and at least pp × interleave."""
    return (np.fmod(layers, interleave) == 0) & (layers >= pp * interleave)
