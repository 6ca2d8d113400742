"""The pages' link helper (app_pages/_page_link.py) without a running app: widget values <-> scenario values, and
the page state keys beside the registry's."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from app_pages import _page_link as link  # noqa: E402
from app_pages._registry_widgets import EMPTY  # noqa: E402
from simulator.inputs import BY_LINK, INPUTS  # noqa: E402
from simulator.share import BASELINE_FLAG, BASELINE_PREFIX, format_value  # noqa: E402

SCALED = [key for key, inp in INPUTS.items() if inp.scale != 1]


def test_page_state_keys_are_not_input_keys():
    for key in link.EXTRAS:
        assert key not in BY_LINK and key not in INPUTS and key != BASELINE_FLAG and not key.startswith(BASELINE_PREFIX)


def test_a_page_link_names_only_registered_inputs():
    with pytest.raises(ValueError, match=r"cluster\.gpu"):
        link.PageLink("x.", ("cluster.gpu",))


@given(st.sampled_from(SCALED), st.data())
def test_a_scaled_value_is_stable_through_its_widget(key, data):
    inp = INPUTS[key]
    value = data.draw(st.floats(inp.low, inp.high, allow_nan=False, allow_infinity=False))
    once = link.from_widget(inp, link.to_widget(inp, value))
    assert once == pytest.approx(value, rel=1e-14, abs=1e-300)
    assert link.from_widget(inp, link.to_widget(inp, once)) == once  # the link stops changing after one pass


@given(st.sampled_from(SCALED), st.integers(1, 999_999), st.integers(-6, 6))
def test_a_typed_value_makes_a_short_link_and_reads_back_as_typed(key, digits, exponent):
    inp = INPUTS[key]
    typed = float(f"{digits}e{exponent}")  # what a person types: 8.3 (million USD)
    if not inp.low <= typed * inp.scale <= inp.high:
        return
    value = link.from_widget(inp, typed)
    assert link.to_widget(inp, value) == typed
    assert len(format_value(value)) <= 12  # 8.3 million USD is "8.3e6", not "8300000.000000001"


def test_empty_values_map_to_the_widgets_empty_state():
    batch, preset = INPUTS["serving.batch"], INPUTS["model.preset"]
    assert link.to_widget(batch, "max") is None and link.from_widget(batch, None) == "max"  # a named default
    assert link.to_widget(preset, None, EMPTY) == EMPTY and link.from_widget(preset, EMPTY, EMPTY) is None
    assert link.from_widget(INPUTS["finance.gpu_hour_usd"], None) is None  # empty: the catalog price's rule


def test_a_parameter_of_another_page_is_named_in_the_users_words():
    keys = ("decision.budget_usd",)
    assert link.not_here("budget", "5e6", keys) is None
    assert link.not_here("gpus", "64", keys) == "GPUs (gpus=64): not an input of this page; ignored."
    assert link.not_here("b.gpus", "64", keys).startswith("b.gpus=64: a pinned baseline is kept by the Train page")
    assert link.not_here("b.gpus", "64", ("cluster.gpus",), baseline=True) is None
    assert link.not_here("sm", "char_lm", keys) == "Small model measured (sm=char_lm): not on this page; ignored."
    assert link.not_here("zz", "1", keys) is None  # unknown: simulator.share names it
