"""The Compress page's inputs: the model (a preset or a size), its training tokens, the serving accelerator and the
compression family's inputs, each a widget from the registry (app_pages._registry_widgets.widget: label, unit, help,
bounds and default from simulator.inputs); and the calibration profile whose measured quality curves the page
shows (the session's active profile when it has a `quality` section, else the shipped reference that has one)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import streamlit as st

from app_pages import _calibrate_state as calibrate
from app_pages._page_link import PageLink
from app_pages._registry_widgets import EMPTY
from app_pages._registry_widgets import widget as registry_widget
from simulator import presentation
from simulator.devices import shipped_profiles
from simulator.inputs import INPUTS
from simulator.keys import nested
from simulator.quality_curves import QualitySection, QualitySectionError, ScalingLaw, quality_from_profile

MODEL = "compress.model"  # preset id, or CUSTOM for a size
CUSTOM = "custom size"
DEFAULT_PRESET = "llama2-70b"  # a page default: the model of the AWQ paper's Llama-2 rows
PAGE = "compress"
LAID_OUT = ("Model", "Precision")  # the groups this page lays out itself; the rest are generated
MAIN = presentation.field_group(PAGE, "Precision").keys
PREFIX = "compress."  # this page's widget state: never shared with another page's
SMALL_MODEL = PREFIX + "small_model"  # the small model whose measured curves are shown


def small_models() -> list[str]:
    """The small models the measured curves can show (those of the profile quality_profile finds)."""
    found = quality_profile()
    return [] if found is None else list(found[1].models)


LINK = PageLink(PREFIX, presentation.page_inputs(PAGE),
                defaults={"model.preset": DEFAULT_PRESET, "serving.accelerator": INPUTS["cluster.accelerator"].default},
                state_keys={"model.preset": MODEL, "sm": SMALL_MODEL},
                empty={"model.preset": CUSTOM, "compression.quant_method": EMPTY},
                options={"sm": small_models}, extras=("sm",))


def widget(key: str, disabled: bool = False, given: dict[str, Any] | None = None) -> Any:
    return registry_widget(key, PREFIX, disabled=disabled, given=given)


def model_inputs() -> dict[str, Any]:
    """The model section: {"preset": id} or {"params": N} (None when the size is left empty)."""
    preset = INPUTS["model.preset"]
    labels = dict(preset.choice_labels)
    if MODEL not in st.session_state:
        st.session_state[MODEL] = LINK.default("model.preset")
    choice = st.selectbox("Model", (*preset.choices, CUSTOM), key=MODEL, format_func=lambda v: labels.get(v, v),
                          help=f"{preset.help} Or choose {CUSTOM} and give the parameter count.")
    params = widget("model.params", disabled=choice != CUSTOM)
    if choice != CUSTOM:
        return {"preset": choice}
    return {"params": params} if params is not None else {}


def serving_accelerator() -> Any:
    """The accelerator the compressed model is served on; it starts at the training accelerator's default, as the
    registry says an empty one does."""
    key = PREFIX + "serving.accelerator"
    if key not in st.session_state:
        st.session_state[key] = st.session_state.get(PREFIX + "cluster.accelerator",
                                                     INPUTS["cluster.accelerator"].default)
    return widget("serving.accelerator")


def one(key: str, values: dict[str, Any]) -> Any:
    """One input; `values`, those left of and above it, tell a derived choice what its "auto" stands for now."""
    return widget(key, given=values)


def widgets(keys: tuple[str, ...]) -> dict[str, Any]:
    """One widget per key, side by side; each sees the values left of it (the method's "auto" reads the bits)."""
    values: dict[str, Any] = {}
    for column, key in zip(st.columns(len(keys)), keys, strict=True):
        with column:
            values[key] = widget(key, given=values)
    return values


def scenario_data(model: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Scenario inputs: the model section, then the dotted keys (None: left empty, the registry's default
    or rule applies; training tokens then come from the preset or about 20 per parameter)."""
    data: dict[str, Any] = {"model": dict(model)}
    for section, fields in nested(values).items():
        data.setdefault(section, {}).update(fields)
    return data


@st.cache_resource(show_spinner=False)
def _shipped() -> Mapping[str, dict[str, Any]]:
    return shipped_profiles()


@st.cache_resource(show_spinner=False, max_entries=16)
def _parsed(profile_id: str, created: str, _profile: dict[str, Any]) -> QualitySection | str | None:
    try:
        return quality_from_profile(_profile)
    except QualitySectionError as exc:
        return str(exc)


def _active_profile() -> tuple[str, dict[str, Any]] | None:
    """The Calibrate page's active profile (this session's, an earlier run's or a shipped one), if any is set."""
    active = st.session_state.get(calibrate.ACTIVE)
    if not isinstance(active, str):
        return None
    own = st.session_state.get(calibrate.SESSION_PROFILES, {})
    if active in own:
        return active, own[active]["profile"]
    if active.startswith("shipped:"):
        profile = _shipped().get(active.removeprefix("shipped:"))
        return (active, profile) if profile is not None else None
    if active.startswith("run:"):
        entry = calibrate.disk_runs()[0].get(active)
        return (active, entry["profile"]) if entry is not None else None
    return None


def quality_profile() -> tuple[dict[str, Any], QualitySection, str] | None:
    """(profile, its parsed quality section, where it came from) for the measured curves; None when no profile
    at hand has a quality section."""
    found = _active_profile()
    if found is not None and found[1].get("quality") is not None:
        section = _parsed(found[0], str(found[1].get("created_utc")), found[1])
        if isinstance(section, QualitySection):
            return found[1], section, f"the active calibration profile ({found[1].get('name', found[0])})"
    for stem, profile, section in _shipped_sections():
        why = " (the active profile has no quality curves)" if found is not None else ""
        return profile, section, f"the shipped reference profile {stem}.json{why}"
    return None


def _shipped_sections() -> Iterator[tuple[str, dict[str, Any], QualitySection]]:
    """(file stem, profile, its parsed quality section) of each shipped profile with a usable one, in name order."""
    for stem, profile in _shipped().items():
        if profile.get("quality") is None:
            continue
        section = _parsed(f"shipped:{stem}", str(profile.get("created_utc")), profile)
        if isinstance(section, QualitySection):
            yield stem, profile, section


def scaling_law_source(found: tuple[dict[str, Any], QualitySection, str] | None) -> tuple[ScalingLaw | None, str]:
    """(the measured scaling law, where it came from): the curves' profile's when it has one (a `--full` quality
    calibration), else the first shipped profile's that has one; (None, "") when none has."""
    if found is not None and found[1].scaling_law is not None:
        return found[1].scaling_law, found[2]
    for stem, _, section in _shipped_sections():
        if section.scaling_law is not None:
            return section.scaling_law, f"the shipped profile {stem}.json"
    return None, ""
