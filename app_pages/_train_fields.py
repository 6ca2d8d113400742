"""The Train page's inputs as data: presets, page defaults, and one row per widget (label, unit, help)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from report import formatting as fmt
from simulator import presentation
from simulator.inputs import INPUTS
from simulator.presets import PRESETS, Preset
from simulator.registry import FieldGroup
from simulator.scenario import SECTION_TYPES

BILLION = 1e9
CUSTOM_SIZE, CUSTOM_SHAPE = "custom-size", "custom-shape"
MODEL_DEFAULTS = {k: v for k, v in dataclasses.asdict(SECTION_TYPES["model"]()).items() if k != "preset"}
__all__ = ["PRESETS", "Preset"]

PRESET_MODELS = {name: p.model for name, p in PRESETS.items()}
MODEL_CHOICES = {**{k: p.label for k, p in PRESETS.items()}, CUSTOM_SIZE: "Custom size (parameters)",
                 CUSTOM_SHAPE: "Custom shape (layers × hidden)"}
DEFAULT_PRESET = "chinchilla-70b"

# The page opens on Chinchilla trained on 1,024 H100s: 8-way tensor x 4-way pipeline x 32-way data parallel.
# Every other value is the registry's default (simulator.inputs), so nothing here restates one.
PAGE_CHOICES: dict[str, dict[str, Any]] = {
    "model": {"preset": DEFAULT_PRESET},
    "training": {"tokens": PRESETS[DEFAULT_PRESET].tokens, "global_batch_seqs": 1536},
    "cluster": {"gpus": 1024, "tp": 8, "pp": 4},
}
DEFAULTS: dict[str, dict[str, Any]] = {
    section: {**{k: v for k, v in dataclasses.asdict(cls()).items() if v is not None and section != "model"},
              **PAGE_CHOICES.get(section, {})}
    for section, cls in SECTION_TYPES.items()
}


@dataclass(frozen=True)
class Field:
    """A widget for one registered input: everything but the layout comes from the input's declaration."""

    key: str  # dotted scenario key; also the widget key (with "_B" when entered in billions)
    style: str = ""  # "radio" to show a choice as buttons

    @property
    def input(self) -> Any:
        return INPUTS[self.key]

    @property
    def kind(self) -> str:
        kind = self.input.kind
        if kind == "choice" and self.style == "radio":
            return "radio"
        return "choice" if kind in ("choice", "device") else kind

    @property
    def label(self) -> str:
        return fmt.labelled(self.input)

    @property
    def help(self) -> str:
        return self.input.help

    @property
    def low(self) -> float | None:
        return None if self.input.low is None else self.input.low / self.input.scale

    @property
    def high(self) -> float | None:
        return None if self.input.high is None else self.input.high / self.input.scale

    @property
    def step(self) -> float | None:
        return None if self.input.step is None else self.input.step / self.input.scale

    @property
    def options(self) -> tuple[Any, ...]:
        return self.input.choices

    @property
    def labels(self) -> dict[Any, str]:
        return dict(self.input.choice_labels)

    @property
    def optional(self) -> bool:
        """Empty means "use the simulator's rule" (derived) or "not given" (optional)."""
        return self.input.default is None

    @property
    def scale(self) -> float:
        return self.input.scale

    @property
    def widget_key(self) -> str:
        return f"{self.key}_B" if self.scale == BILLION else self.key


PAGE = "train"


def _fields(group: FieldGroup) -> tuple[Field, ...]:
    return tuple(Field(k, "radio" if k in group.radio else "") for k in group.keys)


def group(title: str) -> tuple[Field, ...]:
    """The widgets of one of the page's field groups (simulator.presentation), by its title."""
    return _fields(presentation.field_group(PAGE, title))


TOKENS, GPUS, ACCELERATOR = (next(f for f in group("Run") if f.key == k)
                             for k in ("training.tokens", "cluster.gpus", "cluster.accelerator"))
MAIN = (TOKENS, GPUS)
(PARAMS,) = group("Model size")
SHAPE, SHAPE_EXTRA = group("Model shape"), group("Model details")
PARALLEL, MEMORY, SYNC = group("Parallelism and batch"), group("Precision and memory"), group("Gradient sync")
GOODPUT, MONEY, QUALITY = group("Goodput"), group("Money and energy"), group("Quality (scaling law)")
LAID_OUT = ("Run", "Model size", "Model shape", "Model details", "Parallelism and batch", "Precision and memory",
            "Gradient sync", "Goodput", "Money and energy", "Quality (scaling law)")  # the rest are generated
OTHER = tuple((g.title, _fields(g)) for g in presentation.field_groups(PAGE) if g.title not in LAID_OUT)
SCENARIO_FIELDS = (*MAIN, ACCELERATOR, *PARALLEL, *MEMORY, *SYNC, *MONEY, *GOODPUT, *QUALITY,
                   *(f for _, fields in OTHER for f in fields))
MODEL_FIELDS = (PARAMS, *SHAPE, *SHAPE_EXTRA)
