"""Modelfolio simulator: pure numpy/scipy models. `from simulator import Scenario, evaluate, sweep`."""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "Scenario": "simulator.scenario",
    "ScenarioError": "simulator.scenario",
    "Figure": "simulator.plan",
    "Plan": "simulator.plan",
    "evaluate": "simulator.evaluator",
    "sweep": "simulator.sweeps",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy: `import simulator.catalog` stays light
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
