"""The schema of a profile's fits (`fits.<section>...`): each fit record, its parameters, their correlation and
its points, as simulator.device_profile and the Calibrate page read them."""

from __future__ import annotations

from typing import Any

from simulator.profile_checks import (
    A2A_EFF_RANGE,
    CONTAINER_SLOTS,
    CORR_TOLERANCE,
    EFFICIENCY_MAX,
    FIT_LABELS,
    FIT_SECTIONS,
    FIT_SLOTS,
    FIT_STATUSES,
    FIT_TEXTS,
    FLOPS_X_AT,
    MAX_CORR_PARAMS,
    MAX_FEATURE,
    MAX_FITS,
    MAX_NAME_CHARS,
    MAX_POINTS,
    MAX_TEXT_CHARS,
    MAX_WORLD_SIZE,
    MAX_X,
    MEASURED_RANGE,
    MODELS_AT,
    NAMED_RANGES,
    POINT_FEATURES,
    POINT_RANKS,
    SUFFIX_RANGES,
    check_key,
    check_number,
    check_row_indices,
    check_scalar,
    check_short_list,
    check_text,
    check_within,
    check_world,
    check_world_key,
    describe_value,
    fail,
    key_text,
    matches_pattern,
    need_field,
)
from simulator.profile_models import (
    BUS_FACTORS,
    BUS_MODELS,
    COMPUTE_MODELS,
    INVENTORY_MODELS,
    KNOWN_MODELS,
    REQUIRED_PARAMS,
)


def check_fits(fits: dict[str, Any], n_rows: int) -> None:
    """Walk every section with an explicit stack (no recursion): positions, world-size keys, the fit cap, and each
    fit record."""
    for section in FIT_SECTIONS:
        need_field(fits, section, dict, "fits")
    stack: list[tuple[tuple[str, ...], dict[str, Any]]] = []
    for section, node in reversed(list(fits.items())):
        check_key(section, "fits")
        if not isinstance(node, dict):
            raise fail(f"fits.{section}", f"expected an object of fits, got {describe_value(node)}")
        stack.append(((section,), node))
    count = 0
    while stack:
        keys, node = stack.pop()
        where = "fits." + ".".join(keys)
        if isinstance(node.get("status"), str):
            if len(keys) == 1 or any(matches_pattern(keys, c) for c in CONTAINER_SLOTS):
                raise fail(where, "expected an object holding fit records here, got a fit record")
            count += 1
            if count > MAX_FITS:
                raise fail(where, f"more than {MAX_FITS:,} fit records: over the cap of {MAX_FITS:,} per profile")
            _check_fit(node, where, keys, n_rows)
            continue
        if "status" in node:
            raise fail(f"{where}.status", f"a fit's status is a string, got {describe_value(node['status'])}")
        if any(matches_pattern(keys, f) for f in FIT_SLOTS):
            raise fail(where, 'expected a fit record (an object with a "status"), got an object without one')
        if keys[-1] == "by_world":
            for key in node:
                check_world_key(key, where)
        if matches_pattern(keys, ("ddp", "by_world", "*")) and node.get("overlap_fraction_measured") is not None:
            measured = node["overlap_fraction_measured"]
            if not isinstance(measured, dict):
                raise fail(f"{where}.overlap_fraction_measured", f"expected an object, got {describe_value(measured)}")
            for stat in ("median", "p25", "p75", "n"):
                check_number(measured.get(stat), f"{where}.overlap_fraction_measured.{stat}", nullable=True)
        children = []
        for key, child in node.items():
            check_key(key, where)
            child_keys = (*keys, key)
            if isinstance(child, dict):
                children.append((child_keys, child))
            elif any(matches_pattern(child_keys, s) for s in (*FIT_SLOTS, *CONTAINER_SLOTS)):
                raise fail(f"{where}.{key}", f"expected an object, got {describe_value(child)}")
        stack.extend(reversed(children))  # depth first, in file order
    _check_a2a_ratio(fits)


def _busbw(fits: dict[str, Any], op: str, world: str) -> float | None:
    node = fits.get("collectives", {}).get(op)
    fit = node.get("by_world", {}).get(world) if isinstance(node, dict) and isinstance(node.get("by_world"), dict) \
        else None
    value = fit.get("params", {}).get("busbw_GBps") if isinstance(fit, dict) and fit.get("status") == "ok" else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _check_a2a_ratio(fits: dict[str, Any]) -> None:
    """The all-to-all's bus bandwidth over the all-reduce's at each world size both fitted (the device's a2a_eff)
    within A2A_EFF_RANGE: each is a valid bandwidth alone, but their ratio is what the simulator uses."""
    node = fits.get("collectives", {}).get("all_to_all")
    worlds = node.get("by_world") if isinstance(node, dict) else None
    low, high = A2A_EFF_RANGE
    for world in worlds if isinstance(worlds, dict) else {}:
        a2a, ar = _busbw(fits, "all_to_all", world), _busbw(fits, "all_reduce", world)
        if a2a is not None and ar is not None and ar > 0 and not low <= a2a / ar <= high:
            raise fail(f"fits.collectives.all_to_all.by_world.{world}.params.busbw_GBps",
                       f"{a2a:g} GB/s is {a2a / ar:.3g}x the all-reduce's {ar:g} GB/s at world size {world}: an "
                       f"all-to-all's efficiency relative to the all-reduce (a2a_eff) must be within {low:g}-{high:g}x; "
                       "re-measure both on the same ranks")


def _models_at(keys: tuple[str, ...]) -> tuple[str, ...]:
    return next((models for prefix, models in MODELS_AT if keys[: len(prefix)] == prefix), KNOWN_MODELS)


def _check_params(params: dict[str, Any], path: str, model: str) -> None:
    for name, value in params.items():
        check_key(name, path)
        where = f"{path}.{name}"
        check_number(value, where)
        if name in NAMED_RANGES:
            check_within(value, where, NAMED_RANGES[name], name.replace("_", " "))
            continue
        for suffix, bounds, what in SUFFIX_RANGES:
            if name.endswith(suffix):
                check_within(value, where, bounds, what)
                break
    missing = [n for n in REQUIRED_PARAMS.get(model, ()) if n not in params]
    if missing:
        raise fail(path, f"model {model!r} needs {', '.join(missing)}")


def _check_fit(fit: dict[str, Any], path: str, keys: tuple[str, ...], n_rows: int) -> None:
    """One fit record at `path`; `keys` locate it under fits (which models may sit there)."""
    status = fit["status"]
    if status not in FIT_STATUSES:
        raise fail(f"{path}.status", f"expected one of {sorted(FIT_STATUSES)}, got {describe_value(status)}")
    for key in fit:
        check_key(key, path)
    for names, limit in ((FIT_TEXTS, MAX_TEXT_CHARS), (FIT_LABELS, MAX_NAME_CHARS)):
        for key in names:
            if key in fit:  # shown as text (a code block, a title, a lookup key): a string, never null
                check_text(fit[key], f"{path}.{key}", limit, nullable=False)
    for i, name in enumerate(check_short_list(fit.get("params_at_bound"), f"{path}.params_at_bound")):
        check_text(name, f"{path}.params_at_bound[{i}]", MAX_NAME_CHARS, nullable=False)
    if "world_size" in fit:
        check_world(fit["world_size"], f"{path}.world_size")
    for i, world in enumerate(check_short_list(fit.get("world_sizes"), f"{path}.world_sizes")):
        if isinstance(world, str):
            check_world_key(world, f"{path}.world_sizes[{i}]")
        else:
            check_world(world, f"{path}.world_sizes[{i}]")
    if status != "ok":
        need_field(fit, "reason", str, path)
        return
    model = need_field(fit, "model", str, path)
    allowed = _models_at(keys)
    if model not in allowed:
        known = "a known model" if model not in KNOWN_MODELS else "a model fitted here"
        raise fail(f"{path}.model", f"{describe_value(model)} is not {known}; expected one of {', '.join(allowed)}")
    _check_params(need_field(fit, "params", dict, path), f"{path}.params", model)
    if model in BUS_MODELS and fit.get("op") not in tuple(BUS_FACTORS):
        raise fail(f"{path}.op", f"expected one of {sorted(BUS_FACTORS)}, got {describe_value(fit.get('op'))}")
    if model in INVENTORY_MODELS:  # predicted through the GEMM fit it was built on, carried in the record
        gemm = need_field(fit, "gemm_fit", dict, path)
        gmodel = need_field(gemm, "model", str, f"{path}.gemm_fit")
        if gmodel not in COMPUTE_MODELS:
            raise fail(f"{path}.gemm_fit.model", f"expected one of {list(COMPUTE_MODELS)}, got {describe_value(gmodel)}")
        _check_params(need_field(gemm, "params", dict, f"{path}.gemm_fit"), f"{path}.gemm_fit.params", gmodel)
    for name, value in need_field(fit, "stderr", dict, path).items():
        check_key(name, f"{path}.stderr")
        check_number(value, f"{path}.stderr.{name}", nullable=True, nonnegative=True)
    for key in ("n_train", "n_heldout"):
        if need_field(fit, key, int, path) < 0:
            raise fail(f"{path}.{key}", "must be >= 0")
    for key in ("mape_train_pct", "mape_heldout_pct"):
        check_number(fit.get(key), f"{path}.{key}", nullable=True, nonnegative=True)
    need_field(fit, "heldout_rule", str, path)
    _check_corr(fit.get("corr"), f"{path}.corr", fit["params"])
    _check_fit_extras(fit, path)
    x_low = 1.0 if any(keys[: len(prefix)] == prefix for prefix in FLOPS_X_AT) else 0.0
    points = need_field(fit, "points", dict, path)
    splits = {split: need_field(points, split, list, f"{path}.points") for split in ("train", "heldout")}
    if sum(map(len, splits.values())) > MAX_POINTS:
        raise fail(f"{path}.points", f"{sum(map(len, splits.values())):,} points are over the cap of {MAX_POINTS:,}")
    for split, items in splits.items():
        for i, pt in enumerate(items):
            _check_point(pt, f"{path}.points.{split}[{i}]", n_rows, x_low)


def _check_fit_extras(fit: dict[str, Any], path: str) -> None:
    """What the Calibrate page shows of a fit beyond its numbers: model selection, efficiencies, derived values."""
    selection = fit.get("selection")
    if selection is not None:
        if not isinstance(selection, dict):
            raise fail(f"{path}.selection", f"expected an object, got {describe_value(selection)}")
        if "rule" in selection:
            check_text(selection["rule"], f"{path}.selection.rule", MAX_TEXT_CHARS, nullable=False)
        candidates = selection.get("candidates")
        if candidates is not None:
            if not isinstance(candidates, dict):
                raise fail(f"{path}.selection.candidates", f"expected an object, got {describe_value(candidates)}")
            for name, scores in candidates.items():
                where = f"{path}.selection.candidates.{name}"
                check_key(name, where)
                if not isinstance(scores, dict):
                    raise fail(where, f"expected an object of scores, got {describe_value(scores)}")
                for key, value in scores.items():
                    check_key(key, where)
                    check_scalar(value, f"{where}.{key}", MAX_NAME_CHARS)
    for key in ("efficiencies", "derived"):
        block = fit.get(key)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise fail(f"{path}.{key}", f"expected an object, got {describe_value(block)}")
        for name, value in block.items():
            check_key(name, f"{path}.{key}")
            check_scalar(value, f"{path}.{key}.{name}")
    eff = fit.get("efficiencies") or {}
    for name in ("eta_compute", "eta_memory"):
        check_within(eff.get(name), f"{path}.efficiencies.{name}", (0.0, EFFICIENCY_MAX, False, True), "efficiency",
                nullable=True)
    check_within(eff.get("peak_tflops"), f"{path}.efficiencies.peak_tflops", SUFFIX_RANGES[0][1], "peak in TFLOP/s",
            nullable=True)
    check_within(eff.get("mem_peak_GBps"), f"{path}.efficiencies.mem_peak_GBps", SUFFIX_RANGES[1][1],
            "bandwidth in GB/s", nullable=True)


def _check_corr(corr: Any, path: str, params: dict[str, Any]) -> None:
    """A fit's optional correlation matrix of its parameters (docs/profile-schema.md): names among the fit's
    params, each once; a square, finite, symmetric matrix with a unit diagonal and |r| <= 1."""
    if corr is None:
        return
    if not isinstance(corr, dict):
        raise fail(path, f"expected an object, got {describe_value(corr)}")
    for key in corr:
        if key not in ("params", "log10_params", "matrix"):
            raise fail(path, f"unknown key {key_text(key)}; expected params, log10_params and matrix")
    names = need_field(corr, "params", list, path)
    if not 2 <= len(names) <= MAX_CORR_PARAMS:
        raise fail(f"{path}.params", f"expected 2 to {MAX_CORR_PARAMS} parameter names, got {len(names):,}")
    for i, name in enumerate(names):
        check_text(name, f"{path}.params[{i}]", MAX_NAME_CHARS, nullable=False)
        if name not in params:
            raise fail(f"{path}.params[{i}]", f"{describe_value(name)} is not one of the fit's params")
        if name in names[:i]:
            raise fail(f"{path}.params[{i}]", f"{describe_value(name)} is named twice")
    for i, name in enumerate(check_short_list(corr.get("log10_params"), f"{path}.log10_params")):
        if not isinstance(name, str) or name not in names:
            raise fail(f"{path}.log10_params[{i}]", f"expected one of corr.params, got {describe_value(name)}")
    matrix = need_field(corr, "matrix", list, path)
    n = len(names)
    if len(matrix) != n:
        raise fail(f"{path}.matrix", f"expected {n} rows (one per name in params), got {len(matrix):,}")
    for i, row in enumerate(matrix):
        if not isinstance(row, list) or len(row) != n:
            raise fail(f"{path}.matrix[{i}]", f"expected a list of {n} numbers, got {describe_value(row)}")
        for j, r in enumerate(row):
            check_within(r, f"{path}.matrix[{i}][{j}]", (-1.0, 1.0, True, True), "correlation")
    for i in range(n):
        if abs(matrix[i][i] - 1.0) > CORR_TOLERANCE:
            raise fail(f"{path}.matrix[{i}][{i}]", f"a parameter's correlation with itself is 1, got {matrix[i][i]:g}")
        for j in range(i):
            if abs(matrix[i][j] - matrix[j][i]) > CORR_TOLERANCE:
                raise fail(f"{path}.matrix[{i}][{j}]", f"{matrix[i][j]:g} differs from matrix[{j}][{i}] = "
                                                        f"{matrix[j][i]:g}: a correlation matrix is symmetric")


def _check_point(pt: Any, where: str, n_rows: int, x_low: float) -> None:
    if not isinstance(pt, dict):
        raise fail(where, f"expected object, got {describe_value(pt)}")
    check_within(pt.get("x"), f"{where}.x", (x_low, MAX_X, True, True))
    check_within(pt.get("measured"), f"{where}.measured", MEASURED_RANGE, "measured time or ratio")
    check_within(pt.get("predicted"), f"{where}.predicted", (-1e12, 1e12, True, True), nullable=True)
    if "rows" in pt:
        check_row_indices(pt["rows"], f"{where}.rows", n_rows)
    for key in POINT_FEATURES:
        if key in pt:
            check_within(pt[key], f"{where}.{key}", (0.0, MAX_FEATURE, False, True))
    for key in POINT_RANKS:
        if key in pt:
            check_within(pt[key], f"{where}.{key}", (1.0, float(MAX_WORLD_SIZE), True, True), "number of ranks")
    for key, value in pt.items():
        check_key(key, where)
        if isinstance(value, str):
            check_text(value, f"{where}.{key}", MAX_NAME_CHARS)
