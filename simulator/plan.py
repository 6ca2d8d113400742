"""Plan: the result of evaluating one scenario; every figure carries its unit, provenance, source and range."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simulator.catalog import HardwareSpec
from simulator.families.training import STEP_PARTS
from simulator.inputs import FIGURES
from simulator.keys import nested
from simulator.registry import Better, Provenance
from simulator.scenario import Scenario

VERSION = "0.2.0"
__all__ = ["FIGURES", "STEP_PARTS", "VERSION", "Figure", "Plan", "PlanWarning", "Provenance", "SpreadTerm",
           "Suggestion"]


@dataclass(frozen=True)
class Figure:
    value: float | bool
    unit: str
    provenance: Provenance
    source: str  # formula or source, with its citation
    label: str
    low: float | None = None  # P10-P90 band from the propagated input uncertainty, where known
    high: float | None = None
    basis: str = ""  # for computed figures: the provenance of the inputs they were computed from
    better: Better = None
    moved_by: tuple[str, ...] = ()  # the spread terms (model columns, largest first) that move its range


@dataclass(frozen=True)
class SpreadTerm:
    """One uncertainty a plan's ranges include: a device's, an input's, or the model's own error."""

    column: str  # the model column it moves
    label: str
    kind: str  # "model error", "device" or "input"
    sigma: float  # one-sigma spread: relative (1 ± 1.2816σ at P10/P90), or log (exp(±1.2816σ)) for model error
    scale: str  # "relative" or "log"
    source: str  # where its size comes from, in words

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "label": self.label, "kind": self.kind, "sigma": self.sigma,
                "scale": self.scale, "source": self.source}


@dataclass(frozen=True)
class PlanWarning:
    """A legal but questionable plan: `code` is stable (pages recognise warnings by it), `text` says what to do."""

    code: str
    text: str
    key: str = ""  # the dotted input it is about

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Suggestion:
    """A nearby plan that would fit in memory: what to change (dotted scenario keys) and what it then needs."""

    label: str
    change: dict[str, Any]
    memory_per_gpu_gb: float

    def __str__(self) -> str:
        return f"{self.label}: {self.memory_per_gpu_gb:.0f} GB"


def _plain(v: Any) -> Any:
    return bool(v) if isinstance(v, bool) else float(v)


@dataclass(frozen=True)
class Plan:
    scenario: Scenario
    figures: dict[str, Figure]  # dotted key ("training.wall_days") -> figure, from every registered family
    hardware: HardwareSpec  # the accelerator the plan used: datasheet, or calibrated from a profile
    warnings: tuple[PlanWarning, ...] = ()
    notes: tuple[str, ...] = ()
    suggestions: tuple[Suggestion, ...] = field(default=())
    spreads: tuple[SpreadTerm, ...] = ()  # what the ranges include, model error first

    def range_terms(self, key: str) -> tuple[SpreadTerm, ...]:
        """The spread terms that move figure `key`'s range, largest move first."""
        by_column = {t.column: t for t in self.spreads}
        return tuple(by_column[c] for c in self.figures[key].moved_by if c in by_column)

    def section(self, name: str) -> dict[str, Figure]:
        prefix = f"{name}."
        return {k.removeprefix(prefix): f for k, f in self.figures.items() if k.startswith(prefix)}

    @property
    def training(self) -> dict[str, Figure]:
        return self.section("training")

    @property
    def quality(self) -> dict[str, Figure]:
        return self.section("quality")

    @property
    def hardware_label(self) -> str:
        return self.hardware.display_name

    def value(self, dotted: str) -> Any:
        return self.figures[dotted].value

    def warning_codes(self) -> tuple[str, ...]:
        return tuple(w.code for w in self.warnings)

    def step_breakdown(self) -> dict[str, float]:
        return {self.figures[f"training.{k}"].label: float(self.figures[f"training.{k}"].value) for k in STEP_PARTS}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": VERSION,
            "scenario": self.scenario.to_dict(),
            "hardware": {"id": self.hardware.id, "name": self.hardware.display_name, "hbm_GB": self.hardware.hbm_GB,
                         "provenance": self.hardware.provenance,
                         "provenance_of": dict(getattr(self.hardware, "provenance_of", {}) or {}),
                         "sources": dict(self.hardware.sources)},
        }
        nested({key: _plain(fig.value) for key, fig in self.figures.items()}, into=out, skip_none=False)
        out.setdefault("quality", {})["law"] = self.scenario.quality.law
        out["ranges"] = {k: {"low": f.low, "high": f.high, "includes": [t.label for t in self.range_terms(k)]}
                         for k, f in self.figures.items() if f.low is not None}
        out["spread_terms"] = [t.to_dict() for t in self.spreads]
        out["provenance"] = {k: {"unit": f.unit, "provenance": f.provenance, "source": f.source, "basis": f.basis}
                             for k, f in self.figures.items()}
        out["warnings"] = [{"code": w.code, "key": w.key, "message": w.text} for w in self.warnings]
        out["suggestions"] = [{"label": x.label, "change": x.change, "memory_per_gpu_gb": x.memory_per_gpu_gb}
                              for x in self.suggestions]
        out["notes"] = list(self.notes)
        return out


