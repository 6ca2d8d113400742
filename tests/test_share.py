"""Scenario inputs <-> URL query parameters (simulator/share.py)."""

import copy
from urllib.parse import parse_qsl, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.inputs import INPUTS
from simulator.share import format_value, from_query, to_query

PRESETS = {"llama2-7b": {"preset": "llama2-7b"}, "gpt3-175b": {"preset": "gpt3-175b"}}
DEFAULTS = {
    "model": {"preset": "chinchilla-70b"},
    "training": {"tokens": 1.4e12, "global_batch_seqs": 1536, "precision": "bf16", "zero_stage": 1,
                 "sequence_parallel": True},
    "cluster": {"accelerator": "H100-SXM", "gpus": 1024, "tp": 8, "pp": 4, "sync": "ring", "dp_overlap": 0.8},
    "finance": {"pue": 1.25, "co2_kg_per_kwh": 0.37},
    "quality": {"law": "chinchilla"},
}


def with_changes(**dotted):
    out = copy.deepcopy(DEFAULTS)
    for key, value in dotted.items():
        section, _, name = key.partition("__")
        if value is None:
            out[section].pop(name, None)
        else:
            out[section][name] = value
    return out


def through_url(query: dict[str, str]) -> dict[str, str]:
    return dict(parse_qsl(urlencode(query), keep_blank_values=True))


def test_defaults_give_an_empty_query():
    assert to_query(DEFAULTS, DEFAULTS) == {}
    assert from_query({}, DEFAULTS).inputs == DEFAULTS
    assert from_query({}, DEFAULTS).problems == ()


def test_only_changed_values_are_written_with_short_keys():
    query = to_query(with_changes(cluster__gpus=2048, training__tokens=2e12), DEFAULTS)
    assert query == {"tok": "2e12", "gpus": "2048"}


def test_preset_with_one_change_stays_short():
    model = {"preset": "llama2-7b", "seq_len": 8192}
    query = to_query({**DEFAULTS, "model": model}, DEFAULTS)
    assert query == {"m": "llama2-7b", "seq": "8192"}
    assert from_query(query, DEFAULTS).inputs["model"] == model


def test_custom_size_model_clears_the_preset():
    query = to_query({**DEFAULTS, "model": {"params": 13e9}}, DEFAULTS)
    assert query == {"m": "", "n": "1.3e10"}
    assert from_query(through_url(query), DEFAULTS).inputs["model"] == {"params": 13e9}


def test_a_pinned_baseline_travels_in_the_link():
    baseline = with_changes(cluster__gpus=512)
    query = to_query(with_changes(cluster__gpus=2048), DEFAULTS, baseline)
    assert query == {"gpus": "2048", "b.gpus": "512"}
    shared = from_query(through_url(query), DEFAULTS)
    assert shared.baseline == baseline and shared.inputs == with_changes(cluster__gpus=2048)
    assert from_query(to_query(DEFAULTS, DEFAULTS, DEFAULTS), DEFAULTS).baseline == DEFAULTS
    assert from_query({}, DEFAULTS).baseline is None


def test_a_huge_value_is_not_echoed():
    shared = from_query({"gpus": "9" * 5_000_000}, DEFAULTS)
    assert shared.inputs == DEFAULTS and len(shared.problems[0]) < 300


def test_a_cleared_value_travels_as_empty():
    inputs = with_changes(finance__pue=None)
    query = to_query(inputs, DEFAULTS)
    assert query == {"pue": ""}
    assert from_query(through_url(query), DEFAULTS).inputs == inputs


def test_bad_values_are_explained_and_the_rest_kept():
    shared = from_query({"gpus": "lots", "tp": "2.5", "hw": "H999", "pue": "0.5", "sp": "maybe", "m": "gpt5",
                         "zz": "1", "tok": "2e12", "pp": "8"}, DEFAULTS)
    assert shared.inputs["training"]["tokens"] == 2e12
    assert shared.inputs["cluster"]["pp"] == 8
    assert shared.inputs["cluster"]["gpus"] == 1024
    assert shared.inputs["cluster"]["tp"] == 8
    assert shared.inputs["cluster"]["accelerator"] == "H100-SXM"
    assert shared.inputs["finance"]["pue"] == 1.25
    text = "\n".join(shared.problems)
    assert len(shared.problems) == 7
    for fragment in ("GPUs (gpus=lots): expected a whole number; kept 1024 GPUs.",
                     "Tensor parallel (tp=2.5): must be a whole number",
                     "Accelerator (hw=H999): unknown accelerator",
                     "PUE (facility ÷ IT power) (pue=0.5): must be between 1 and 5; kept 1.25.",
                     "Sequence parallelism (sp=maybe): expected 1 or 0; kept on.",
                     "Model preset (m=gpt5): allowed values are", "zz=1: not a Modelfolio link parameter"):
        assert fragment in text
    assert "cluster.gpus" not in text and "finance.pue" not in text  # the user's words, not dotted keys


def test_a_kept_value_is_said_in_its_widgets_unit():
    defaults = {"decision": {"budget_usd": 8e6}, "model": {"params": 1.3e10}}
    shared = from_query({"budget": "lots", "n": "-1"}, defaults)
    assert shared.inputs == defaults
    assert shared.problems == ("Budget (budget=lots): expected a number; kept 8 million USD.",
                               "Parameters (n=-1): must be between 100000 and 1e+15; kept 13 billions.")


def test_a_named_value_travels():
    defaults = {"serving": {"batch": "max"}}
    assert to_query({"serving": {"batch": 32}}, defaults) == {"sb": "32"}
    assert from_query({"sb": "32"}, defaults).inputs == {"serving": {"batch": 32}}
    assert to_query(defaults, {"serving": {"batch": 32}}) == {"sb": "max"}
    shared = from_query({"sb": "max"}, {"serving": {"batch": 32}})
    assert shared.inputs == defaults and shared.problems == ()
    assert from_query({"sb": "most"}, defaults).problems == (
        'Batch (sb=most): expected a whole number or "max"; kept max.',)


def test_accelerator_aliases_are_canonical_and_repeated_keys_use_the_last():
    shared = from_query({"hw": "h200", "gpus": ["64", "128"]}, DEFAULTS)
    assert shared.inputs["cluster"]["accelerator"] == "H200"
    assert shared.inputs["cluster"]["gpus"] == 128


def test_every_input_has_a_distinct_url_key():
    links = [inp.link for inp in INPUTS.values()]
    assert all(links) and len(set(links)) == len(links)
    assert not any(link.startswith("b.") or link == "b" for link in links)


@given(st.floats(min_value=1e3, max_value=1e16, allow_nan=False, allow_infinity=False))
def test_numbers_read_back_exactly(x):
    assert float(format_value(x)) == x


@settings(max_examples=60, deadline=None)
@given(
    gpus=st.integers(1, 1_000_000),
    tokens=st.floats(1e3, 1e16, allow_nan=False),
    tp=st.sampled_from([1, 2, 4, 8, 16]),
    accelerator=st.sampled_from(["H100-SXM", "A100-80GB-SXM", "B200", "MI300X"]),
    precision=st.sampled_from(["bf16", "fp16", "fp8", "fp32"]),
    sequence_parallel=st.booleans(),
    pue=st.floats(1.0, 5.0, allow_nan=False),
    price=st.one_of(st.none(), st.floats(0.0, 10_000.0, allow_nan=False)),
    model=st.one_of(
        st.sampled_from([*PRESETS.values(), DEFAULTS["model"]]),
        st.builds(lambda n: {"params": n}, st.floats(1e5, 1e15, allow_nan=False)),
        st.builds(lambda base, seq: {**base, "seq_len": seq}, st.sampled_from(list(PRESETS.values())),
                  st.integers(1, 1_000_000)),
    ),
)
def test_round_trip(gpus, tokens, tp, accelerator, precision, sequence_parallel, pue, price, model):
    inputs = with_changes(cluster__gpus=gpus, training__tokens=tokens, cluster__tp=tp, cluster__accelerator=accelerator,
                          training__precision=precision, training__sequence_parallel=sequence_parallel,
                          finance__pue=pue, finance__gpu_hour_usd=price)
    inputs["model"] = copy.deepcopy(model)
    query = to_query(inputs, DEFAULTS)
    assert all(isinstance(v, str) for v in query.values())
    shared = from_query(through_url(query), DEFAULTS)
    assert shared.problems == ()
    assert shared.inputs == inputs
