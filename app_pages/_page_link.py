"""A page's inputs in its address, for the pages whose widgets come from the registry (Decide, Deploy, Compress).

Each page declares a `PageLink`: the registered inputs it shows (their widgets keep their values under the page's
own prefix), the values it opens with where they are not the registry's, and the page state that travels beside
them (the scenario's name, a choice of the page's own). `open_link` reads the address on the page's first run in a
session, before its widgets are drawn, and says on the page which parameters it could not use; `publish` writes
what differs from the page's defaults after them. Parameters use the registry's short keys (simulator.share), as
the Train page's links do, so a link from one page opened on another names what that page does not show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from app_pages._devices import session_devices
from report.formatting import md_escape
from simulator import share
from simulator.devices import all_devices
from simulator.inputs import INPUTS
from simulator.keys import nested
from simulator.registry import Input
from simulator.scenario import Scenario, ScenarioError

NAME = "name"  # the scenario's name (a page's "Name this ..." field)
# page state that travels beside the inputs, on whichever page has it: link key -> what the user calls it
EXTRAS = {NAME: "Scenario name", "sm": "Small model measured"}
Options = Sequence[Any] | Callable[[], Sequence[Any]]


@dataclass(frozen=True)
class PageLink:
    """What one page keeps in its address."""

    prefix: str  # the page's widget state prefix ("decide."): widget of input `key` is state[prefix + key]
    keys: tuple[str, ...]  # the registered inputs the page shows
    defaults: Mapping[str, Any] = field(default_factory=dict)  # dotted key -> value the page opens with, where
    # not the registry's default (Deploy opens on Llama 3 70B)
    state_keys: Mapping[str, str] = field(default_factory=dict)  # dotted or extra key -> state key, where not
    # prefix + key
    options: Mapping[str, Options] = field(default_factory=dict)  # dotted or extra key -> the values its widget
    # offers, where fewer than the registry allows (the bit widths of a select)
    empty: Mapping[str, Any] = field(default_factory=dict)  # dotted key -> the widget value meaning "left empty"
    # for a choice that may be left empty (_registry_widgets.EMPTY for a `none_label` one)
    extras: tuple[str, ...] = ()  # EXTRAS this page keeps (their state key: prefix + link key, or state_keys)

    def __post_init__(self) -> None:
        unknown = [k for k in self.keys if k not in INPUTS] + [e for e in self.extras if e not in EXTRAS]
        if unknown:
            raise ValueError(f"PageLink({self.prefix!r}): not registered: {unknown}")

    def state_key(self, key: str) -> str:
        return self.state_keys.get(key, self.prefix + key)

    def default(self, key: str) -> Any:
        if key in self.defaults:
            return self.defaults[key]
        inp = INPUTS[key]
        if inp.kind == "choice" and inp.derived is not None and inp.default is None:
            return None  # a derived choice opens on "auto" (_registry_widgets.widget)
        if inp.kind == "choice" and inp.default not in inp.choices:
            return inp.choices[0]  # as _registry_widgets.widget opens a choice without a default
        return inp.default

    def default_sections(self) -> dict[str, dict[str, Any]]:
        return nested({key: self.default(key) for key in self.keys})


def _named(inp: Input) -> Any:
    """The named value an empty number field stands for (serving.batch empty is "max"), else None."""
    return inp.default if isinstance(inp.default, str) and inp.default in inp.words else None


def to_widget(inp: Input, value: Any, empty: Any = None) -> Any:
    """A scenario value as the input's widget holds it (in its unit, the empty option for None)."""
    if inp.kind in ("int", "float"):
        if value is None or isinstance(value, str):  # a named value ("max") is the empty field
            return None
        scaled = float(f"{value / inp.scale:.15g}") if inp.scale != 1 else value  # 8.3, not 8.299999999999999
        return int(scaled) if inp.kind == "int" else float(scaled)
    return empty if value is None else value


def from_widget(inp: Input, held: Any, empty: Any = None) -> Any:
    """The scenario value a widget holds (as _registry_widgets.widget returns it)."""
    if held is None or (empty is not None and held == empty):
        return _named(inp) if inp.kind in ("int", "float") else None
    if inp.kind in ("int", "float") and inp.scale != 1:
        value = float(f"{held * inp.scale:.15g}")  # 8.3 million USD is 8300000, not 8300000.000000001
        return int(value) if inp.kind == "int" else value
    return held


def _offered(link: PageLink, key: str) -> Sequence[Any] | None:
    """The values the widget of `key` can hold, where narrower than the registry's bounds; None: any valid one."""
    options = link.options.get(key)
    if callable(options):
        return options()
    if options is not None:
        return options
    if key in INPUTS and INPUTS[key].kind == "device":
        return list(all_devices(session_devices()))  # the accelerator select's choices
    if key in INPUTS and INPUTS[key].offered:
        return INPUTS[key].offered  # a number offered as a list (bit widths)
    return None


def _can_hold(link: PageLink, key: str, value: Any) -> str | None:
    """Why the page's widget cannot show `value` (a valid input), or None."""
    inp = INPUTS[key]
    select = inp.kind in ("choice", "device", "bool") or key in link.options or bool(inp.offered)
    if value is None and select and key not in link.empty:
        return "this page has no empty choice for it"  # a select or a toggle: only a number field can be empty
    offered = _offered(link, key)
    if value is not None and offered is not None and value not in offered:
        return f"this page offers {', '.join(map(str, offered))}"
    return None


def name_problem(text: str) -> str | None:
    """Why `text` cannot name a scenario (the scenario's own rule), or None."""
    try:
        Scenario.from_dict({NAME: text, "model": {"params": 1e9}})
    except ScenarioError as exc:
        return "; ".join(p.removeprefix(f"{NAME}: ") for p in exc.problems)
    return None


def _extra_problem(link: PageLink, key: str, text: str) -> str | None:
    if len(text) > share.MAX_VALUE_CHARS:
        return "too long"
    if key == NAME:
        return name_problem(text)
    offered = _offered(link, key)
    if offered is not None and text not in offered:
        return f"allowed values are {', '.join(map(str, offered))}" if offered else "nothing to choose from here"
    return None


def not_here(key: str, text: str, keys: Sequence[str], extras: Sequence[str] = (), baseline: bool = False
             ) -> str | None:
    """Why a page ignores a link parameter another page writes: a registered input or page state it does not show,
    or (unless `baseline`) a pinned baseline's `b.` parameter; None when the page reads it (or simulator.share
    names it as unknown)."""
    bare = key.removeprefix(share.BASELINE_PREFIX)
    if not baseline and (key == share.BASELINE_FLAG or bare != key):
        return f"{key[:60]}={share.shown(text)}: a pinned baseline is kept by the Train page only; ignored."
    inp = share.input_of(bare)
    if inp is not None and inp.key not in keys:
        return f"{inp.label} ({key}={share.shown(text)}): not an input of this page; ignored."
    if inp is None and bare in EXTRAS and bare not in extras:
        return f"{EXTRAS[bare]} ({key}={share.shown(text)}): not on this page; ignored."
    return None


def split(params: Mapping[str, str], keys: Sequence[str], extras: Sequence[str] = (),
          baseline: bool = False) -> tuple[dict[str, str], list[str]]:
    """(the parameters a page reads, a message for each it ignores: `not_here`)."""
    mine: dict[str, str] = {}
    problems: list[str] = []
    for key, text in params.items():
        why = not_here(key, text, keys, extras, baseline)
        if why is None:
            mine[key] = text
        else:
            problems.append(why)
    return mine, problems


def _restore_one(link: PageLink, param: str, text: str, defaults: dict[str, dict[str, Any]]) -> list[str]:
    """Set one widget's state from one link parameter; the messages for what could not be used."""
    if param in link.extras:
        why = _extra_problem(link, param, text)
        if why is not None:
            return [f"{EXTRAS[param]} ({param}={share.shown(text)}): {why}; ignored."]
        st.session_state[link.state_key(param)] = text
        return []
    shared = share.from_query({param: text}, defaults)
    inp = share.input_of(param)
    if shared.problems or inp is None:
        return list(shared.problems)
    value = shared.inputs.get(inp.section, {}).get(inp.name)
    why = _can_hold(link, inp.key, value)
    if why is not None:
        return [share.problem(inp, param, text, why, f"kept {share.value_text(inp, link.default(inp.key))}")]
    st.session_state[link.state_key(inp.key)] = to_widget(inp, value, link.empty.get(inp.key))
    return []


def _restore(link: PageLink) -> list[str]:
    """Set the widgets' state from the address; a message for each parameter not used, in the address's order."""
    defaults = link.default_sections()
    problems: list[str] = []
    for param, text in st.query_params.to_dict().items():
        why = not_here(param, text, link.keys, link.extras)
        problems += [why] if why is not None else _restore_one(link, param, text, defaults)
    return problems


def remember(prefix: str, query: Mapping[str, str]) -> None:
    """Keep the page's last address in the session: Streamlit drops a page's widget state while another page
    runs, so coming back through the menu (an address without parameters) would show the defaults."""
    st.session_state[prefix + "link.last"] = dict(query)


def recall(prefix: str, widget_keys: Sequence[str]) -> dict[str, str] | None:
    """The page's last address when its widgets were dropped (another page ran since) and the address it was
    opened at has no parameters of its own; None otherwise."""
    state = st.session_state
    if any(k in state for k in widget_keys) or st.query_params.to_dict():
        return None
    return state.get(prefix + "link.last")


def open_link(link: PageLink) -> None:
    """Before the page's widgets. On its first run in this session: take its inputs from the address, and say
    which parameters were not used. Back on the page after another one: its inputs as it left them."""
    read = link.prefix + "link.read"
    if st.session_state.get(read):
        last = recall(link.prefix, [link.state_key(k) for k in link.keys])
        if last:
            st.query_params.from_dict(last)
            _restore(link)  # read before: nothing in it is new to say
        return
    problems = _restore(link)
    st.session_state[read] = True
    say_unused(problems)


def say_unused(problems: Sequence[str]) -> None:
    """The link parameters a page could not use, one line each, as share.py words them (the value as typed)."""
    if problems:
        st.info("Some link parameters were not used:\n" + "\n".join(f"- {md_escape(p)}" for p in problems),
                icon=":material/link_off:")


def _held(link: PageLink, key: str) -> Any:
    """The scenario value the widget of `key` holds now (its page default before it is first drawn)."""
    state_key = link.state_key(key)
    if state_key not in st.session_state:
        return link.default(key)
    return from_widget(INPUTS[key], st.session_state[state_key], link.empty.get(key))


def query(link: PageLink) -> dict[str, str]:
    """The address's parameters for what the page's widgets hold now: only what differs from its defaults."""
    out = share.to_query(nested({key: _held(link, key) for key in link.keys}), link.default_sections())
    for key in link.extras:
        text = st.session_state.get(link.state_key(key))
        offered = _offered(link, key)
        if isinstance(text, str) and text and text != (offered[0] if offered else ""):  # not the page's default
            out[key] = text
    return out


def publish(link: PageLink) -> None:
    """After the page's widgets: keep the address in step with them."""
    wanted = query(link)
    remember(link.prefix, wanted)
    if st.query_params.to_dict() != wanted:
        st.query_params.from_dict(wanted)
