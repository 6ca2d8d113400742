"""Training cost model (pure numpy): FLOPs, memory, communication, step time, energy and cost."""

from .constants import DEFAULT_CONSTANTS, TrainingConstants, constant_sources
from .flops import flops_per_token_hw, flops_per_token_model, params_from_shape
from .model import INPUT_KEYS, OUTPUT_KEYS, training_columns

__all__ = [
    "DEFAULT_CONSTANTS",
    "INPUT_KEYS",
    "OUTPUT_KEYS",
    "TrainingConstants",
    "constant_sources",
    "flops_per_token_hw",
    "flops_per_token_model",
    "params_from_shape",
    "training_columns",
]
