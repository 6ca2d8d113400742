"""Scenario: every input a user can set, as frozen dataclasses generated from the input registry.

Each section (`model`, `training`, `cluster`, `finance`, ...) is a frozen dataclass whose fields are the
registered inputs of that section (simulator.inputs); nothing here restates a key, a default or a bound.
`Scenario.from_dict` checks and completes the inputs (simulator.resolve) and says exactly what is wrong.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, make_dataclass
from types import MappingProxyType
from typing import Any

from simulator.errors import ScenarioError
from simulator.families.quality import QUALITY_LAWS
from simulator.families.training_inputs import MLP_KINDS, PRECISIONS, RECOMPUTE, SHARDING, SYNC_METHODS
from simulator.inputs import SECTIONS, section_of
from simulator.keys import nested, split_key
from simulator.names import NameProblemError, checked_name

__all__ = ["MLP_KINDS", "PRECISIONS", "QUALITY_LAWS", "RECOMPUTE", "SECTION_TYPES", "SHARDING", "SYNC_METHODS",
           "ClusterSpec", "CompressionSpec", "DecisionSpec", "FinanceSpec", "GoodputSpec", "ModelSpec", "QualitySpec",
           "Scenario", "ScenarioError", "ServingSpec", "TrainingSpec"]


def _rebuild(section: str, values: tuple[Any, ...]) -> Any:
    """A section's value from its field values (how a section pickles, whatever module declared it)."""
    return SECTION_TYPES[section](*values)


def _section_type(section: str) -> type:
    specs = [(inp.name, Any, field(default=inp.default if inp.derived is None else None))
             for inp in section_of(section)]

    def reduce(self: Any) -> tuple[Any, ...]:
        return _rebuild, (section, tuple(getattr(self, name) for name, *_ in specs))

    return make_dataclass(f"{section.title()}Spec", specs, frozen=True,
                          namespace={"__module__": __name__, "__reduce__": reduce})


# The sections the product ships, one module attribute each (importable and type-checked by name); a section a
# family registered later adds (simulator/families/__init__.py) gets its class in SECTION_TYPES alone. Every
# section pickles through `_rebuild`.
ModelSpec = _section_type("model")
TrainingSpec = _section_type("training")
ClusterSpec = _section_type("cluster")
GoodputSpec = _section_type("goodput")
FinanceSpec = _section_type("finance")
CompressionSpec = _section_type("compression")
QualitySpec = _section_type("quality")
ServingSpec = _section_type("serving")
DecisionSpec = _section_type("decision")
_NAMED = {cls.__name__.removesuffix("Spec").lower(): cls
          for cls in (ModelSpec, TrainingSpec, ClusterSpec, GoodputSpec, FinanceSpec, CompressionSpec, QualitySpec,
                      ServingSpec, DecisionSpec)}
# section -> its class, in the registry's order; read-only (shared by every caller)
SECTION_TYPES: Mapping[str, type] = MappingProxyType(
    {section: _NAMED[section] if section in _NAMED else _section_type(section) for section in SECTIONS})


def _sectioned(flat: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return nested(flat, into={s: {} for s in SECTIONS}, skip_none=False)


MAX_NAME_CHARS = 200


def _split_name(data: Any) -> tuple[str, Any]:
    """The scenario's top-level `name` (free text, any Unicode, checked by simulator.names) and the sections
    without it."""
    if not isinstance(data, dict) or "name" not in data:
        return "", data
    rest = {k: v for k, v in data.items() if k != "name"}
    if data["name"] is None:
        return "", rest
    try:
        return checked_name(data["name"], MAX_NAME_CHARS), rest
    except NameProblemError as exc:
        raise ScenarioError([f"Name: {exc}"]) from None


@dataclass(frozen=True)
class _ScenarioBase:
    name: str = field(default="", compare=False)  # free text (any Unicode): the report's title
    notes: tuple[str, ...] = field(default=(), compare=False)  # how defaults and the shape were derived
    derived: frozenset[str] = field(default=frozenset(), compare=False)  # keys filled from other inputs
    given: Mapping[str, Any] = field(default_factory=dict, compare=False)  # what the user chose, by dotted key
    idle: frozenset[str] = field(default=frozenset(), compare=False)  # keys acting on nothing here (Input.applies)

    @property
    def dp(self) -> int:
        return self.cluster.gpus // (self.cluster.tp * self.cluster.cp * self.cluster.pp)

    def value(self, dotted: str) -> Any:
        section, name = split_key(dotted)
        return getattr(getattr(self, section), name)

    def to_dict(self) -> dict[str, Any]:
        """Every value, resolved (what the plan used), and the name when there is one."""
        out: dict[str, Any] = {"name": self.name} if self.name else {}
        return out | {name: dataclasses.asdict(getattr(self, name)) for name in SECTIONS}

    def inputs(self) -> dict[str, Any]:
        """The values the user chose: keys derived from other inputs (shape from params, catalog price, ...)
        are left out, so that changing e.g. the accelerator re-derives its price."""
        out: dict[str, Any] = {"name": self.name} if self.name else {}
        return out | _sectioned(self.given)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: Any, devices: Mapping[str, Any] | None = None, *, rules: bool = True) -> Scenario:
        """Check and complete `data`; `rules=False` skips the rules relating inputs (only for the base of a sweep
        whose every row is checked: simulator.decision's search)."""
        from simulator.resolve import resolve  # the resolver imports the registry, not this module

        name, data = _split_name(data)
        r = resolve(data, devices, rules=rules)
        sections = {s: SECTION_TYPES[s](**vals) for s, vals in _sectioned(r.values).items()}
        return cls(**sections, name=name, notes=r.notes, derived=r.derived, given=r.given, idle=r.idle)

    @classmethod
    def from_json(cls, text: str | bytes, devices: Mapping[str, Any] | None = None, *,
                  source: str = "scenario") -> Scenario:
        """Parse untrusted scenario JSON through the one bounded reader (simulator.safe_json: size, depth,
        number-length, duplicate-key and NaN limits); `source` names the file or field in the messages."""
        from simulator.safe_json import loads
        from simulator.safe_json_errors import JSONInputError
        from simulator.safe_json_limits import MAX_SCENARIO_BYTES

        try:
            data = loads(text, source=source, max_bytes=MAX_SCENARIO_BYTES)
        except JSONInputError as exc:
            raise ScenarioError([str(exc)]) from None
        return cls.from_dict(data, devices)

    def replace(self, devices: Mapping[str, Any] | None = None, **dotted: Any) -> Scenario:
        """Copy with dotted keys changed, re-validated: `s.replace(**{"cluster.gpus": 64})`."""
        return Scenario.from_dict(nested(dotted, into=self.inputs(), skip_none=False), devices)


Scenario = make_dataclass(
    "Scenario",
    [(s, Any, field(default_factory=SECTION_TYPES[s])) for s in SECTIONS],
    bases=(_ScenarioBase,), frozen=True, namespace={"__module__": __name__},
)
Scenario.__doc__ = "Every input of one plan, by section; build it with `Scenario.from_dict` or `from_json`."
