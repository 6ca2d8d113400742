"""Published rows (benchmarks/published/*.json): load them, predict each through the public path, report the error.

Run: python -m benchmarks.published_rows [PATTERN]   (e.g. `training`: every set whose file name starts with it)

A set is one JSON file (format: docs of issue 19, /work/published-format.md): `set`, `source`, `retrieved` and
`rows`, each row an `id`, a `group` (one paper or model family), a plan `figure`, the `published` value in that
figure's unit and the `scenario` that `Scenario.from_dict` takes. The prediction is
`evaluate(Scenario.from_dict(row["scenario"])).value(row["figure"])`, nothing else.
The error of a row is the signed log-ratio ln(predicted / published): + over-predicts, - under-predicts.
Its optimism is the same error oriented by the figure's `better` direction (simulator.inputs.FIGURES): + when the
model promises a better figure than was published (more throughput, less time), whatever the figure, so that
throughput and time rows of one family can be read together.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PUBLISHED_DIR = Path(__file__).resolve().parent / "published"


def set_paths(pattern: str = "*") -> list[Path]:
    """The set files whose name (without .json) matches the glob `pattern` ("training" means "training*")."""
    glob = pattern if any(ch in pattern for ch in "*?[") else f"{pattern}*"
    return sorted(PUBLISHED_DIR.glob(f"{glob}.json"))


def load_sets(pattern: str = "*") -> list[dict[str, Any]]:
    """Every row of the matching sets, each with `set`, `set_source` and `source` (the row's own or the set's)."""
    rows: list[dict[str, Any]] = []
    for path in set_paths(pattern):
        data = json.loads(path.read_text(encoding="utf-8"))
        for row in data["rows"]:
            rows.append({**row, "set": data["set"], "set_source": data["source"],
                         "source": row.get("source", data["source"]),
                         "outside_model": data.get("outside_model", "")})
    return rows


def predict(row: Mapping[str, Any]) -> float:
    """The plan's value of the row's figure for the row's scenario (Scenario.from_dict + evaluate)."""
    from simulator import Scenario, evaluate

    return float(evaluate(Scenario.from_dict(row["scenario"])).value(row["figure"]))


def log_error(predicted: float, published: float) -> float:
    """ln(predicted / published): the signed error on the log-ratio scale."""
    return math.log(predicted / published)


def optimism(figure: str, log_err: float) -> float:
    """`log_err` oriented so that + means the model promised better than published (FIGURES[figure].better)."""
    from simulator.inputs import FIGURES

    better = FIGURES[figure].better
    if better not in ("higher", "lower"):
        raise ValueError(f"figure {figure!r} has no better direction, so its optimism is undefined")
    return log_err if better == "higher" else -log_err


def errors(rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """Signed log errors of `rows`, in order."""
    return np.array([log_error(predict(r), float(r["published"])) for r in rows])


def residuals(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per row: its provenance (id, set, group, figure, source), published and predicted values, the
    signed log error and the optimism; what a model-error fit stores."""
    out = []
    for r in rows:
        predicted = predict(r)
        err = log_error(predicted, float(r["published"]))
        out.append({"id": r["id"], "set": r["set"], "group": r["group"], "figure": r["figure"],
                    "source": r["source"], "published": float(r["published"]), "predicted": predicted,
                    "log_error": err, "optimism": optimism(r["figure"], err)})
    return out


def summary(log_err: np.ndarray) -> dict[str, float]:
    """n, median signed error, median |error| and the worst (largest |error|, signed), as percentages
    (exp(log error) - 1)."""
    pct = np.expm1(log_err) * 100.0
    worst = float(pct[np.argmax(np.abs(log_err))]) if len(pct) else float("nan")
    return {"n": float(len(pct)), "median_pct": float(np.expm1(np.median(log_err)) * 100.0),
            "median_abs_pct": float(np.expm1(np.median(np.abs(log_err))) * 100.0), "worst_pct": worst}


def by_set(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    out: dict[str, list[Mapping[str, Any]]] = {}
    for r in rows:
        out.setdefault(r["set"], []).append(r)
    return out


def report(pattern: str = "*", rows_too: bool = True) -> str:
    lines = []
    for name, rows in by_set(load_sets(pattern)).items():
        err = errors(rows)
        s = summary(err)
        opt = np.expm1(np.median([optimism(r["figure"], e) for r, e in zip(rows, err, strict=True)])) * 100.0
        lines.append(f"{name}: n {s['n']:.0f}   median signed {s['median_pct']:+.1f}%   median |error| "
                     f"{s['median_abs_pct']:.1f}%   worst {s['worst_pct']:+.1f}%   median optimism {opt:+.1f}%")
        if rows_too:
            for r, e in zip(rows, err, strict=True):
                lines.append(f"    {r['id']:<28} {r['group']:<16} {r['figure']:<28} published {float(r['published']):>12.6g}"
                             f"   error {math.expm1(e) * 100:+6.1f}%")
        for group in dict.fromkeys(r["group"] for r in rows):
            mine = [(r, e) for r, e in zip(rows, err, strict=True) if r["group"] == group]
            g = summary(np.array([e for _, e in mine]))
            g_opt = np.expm1(np.median([optimism(r["figure"], e) for r, e in mine])) * 100.0
            lines.append(f"  group {group:<16} n {g['n']:.0f}   median signed {g['median_pct']:+.1f}%   "
                         f"median |error| {g['median_abs_pct']:.1f}%   worst {g['worst_pct']:+.1f}%   "
                         f"optimism {g_opt:+.1f}%")
    return "\n".join(lines)


def main(argv: Sequence[str] = ()) -> None:
    pattern = argv[0] if argv else "*"
    if not set_paths(pattern):
        raise SystemExit(f"no published set matches {pattern!r} in {PUBLISHED_DIR}")
    print(report(pattern))


if __name__ == "__main__":
    main(sys.argv[1:])
