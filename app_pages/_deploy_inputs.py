"""The Deploy page's question as widgets (app_pages._registry_widgets: everything from the registry) and the
scenario they make."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from app_pages._page_link import NAME, PageLink
from app_pages._registry_widgets import EMPTY, widget
from simulator.inputs import INPUTS
from simulator.keys import nested

PREFIX = "deploy."
FIRST_PRESET = "llama-3-70b"  # the preset the page opens with (the registry gives the preset no default)
CUSTOM = "Custom size (parameters)"
MODEL = ("model.preset", "model.params", "serving.accelerator", "compression.weight_bits")
TRAFFIC = ("serving.requests_per_s", "serving.prompt_tokens", "serving.output_tokens", "serving.ttft_target_s",
           "serving.tpot_target_s")
MORE_SERVING = ("serving.batch", "serving.peak_to_average", "serving.gpus_per_replica", "compression.act_bits",
                "compression.kv_bits", "compression.format", "compression.quant_method")
MORE_MONEY = ("finance.deploy", "finance.rent_term", "decision.horizon_months", "finance.serving_gpu_hour_usd",
              "finance.purchase_usd_per_gpu", "finance.api_input_usd_per_million",
              "finance.api_output_usd_per_million", "finance.revenue_per_million_output_tokens_usd",
              "finance.traffic_growth_per_month", "finance.include_training")


LINK = PageLink(PREFIX, (*MODEL, *TRAFFIC, *MORE_SERVING, *MORE_MONEY),
                empty={"model.preset": EMPTY, "compression.quant_method": EMPTY},
                # the training cluster's default accelerator, as the registry's rule derives an empty one
                defaults={"model.preset": FIRST_PRESET, "serving.accelerator": INPUTS["cluster.accelerator"].default},
                extras=(NAME,))


def one(key: str, values: Mapping[str, Any], disabled: bool = False) -> Any:
    """One input; `values`, the inputs above it, tell a derived choice what its "auto" stands for now."""
    if key in LINK.defaults:
        st.session_state.setdefault(PREFIX + key, LINK.default(key))
    if key == "model.preset":
        return widget(key, PREFIX, none_label=CUSTOM)
    return widget(key, PREFIX, disabled=disabled, given=values)


def _row(keys: tuple[str, ...], values: dict[str, Any]) -> None:
    for col, key in zip(st.columns(len(keys)), keys, strict=True):
        with col:
            values[key] = one(key, values, disabled=key == "model.params" and values.get("model.preset") is not None)


def question() -> dict[str, Any]:
    """The widgets, main ones first and the rest in an expander; their values by dotted key."""
    values: dict[str, Any] = {}
    _row(MODEL, values)
    _row(TRAFFIC, values)
    with st.expander("More settings: batch, replicas, precision, and money"):
        st.markdown("**Serving**")
        _row(MORE_SERVING[:3], values)
        _row(MORE_SERVING[3:], values)
        st.markdown("**Money**")
        _row(MORE_MONEY[:3], values)
        _row(MORE_MONEY[3:6], values)
        _row(MORE_MONEY[6:], values)
    return values


def scenario_data(values: Mapping[str, Any], name: str = "") -> dict[str, Any]:
    """Scenario inputs from dotted keys (None: left empty, so the registry's default or rule applies)."""
    data: dict[str, Any] = {"name": name} if name else {}
    chosen = dict(values)
    if chosen.get("model.preset") is not None:
        chosen.pop("model.params", None)  # the preset's shape counts the parameters
    for section, fields in nested(chosen).items():
        data.setdefault(section, {}).update(fields)
    return data
