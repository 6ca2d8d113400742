"""The scenario reference (docs/scenario.md), generated from the input registry and the families' figures."""

from __future__ import annotations

from simulator.families import FAMILIES
from simulator.inputs import ERRORS, INPUTS, SECTIONS, WARNINGS


def _default(key: str) -> str:
    inp = INPUTS[key]
    if inp.derived is not None:
        return inp.derived.text + (" (always)" if inp.derived.always else "")
    if inp.default is not None:
        return f"`{str(inp.default).lower() if isinstance(inp.default, bool) else inp.default}`"
    return f"none: {inp.absent}" if inp.absent else "none"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def scenario_reference() -> str:
    lines = [
        "# Scenario reference",
        "",
        "Generated from the input registry (`simulator/families/*`, `python -m simulator.scenario_doc`); a test keeps "
        "it current. Every key is optional except the model size: `model.params`, `model.preset`, or the shape "
        "(`model.layers`, `model.hidden`, `model.heads`).",
        "",
        "The `link` column is the key in a page's address: each page (Decide, Train, Compress, Deploy) keeps there "
        "what differs from its defaults (`/decide?budget=8e6&hz=24`, in the scenario's units), a link opened in a "
        "new browser shows the same inputs, and the page names each parameter it could not use (a bad value keeps "
        "the default; an input the page does not show is ignored). Beside the inputs travel `name` (the scenario's "
        "name), `sm` (the small model Compress shows) and Train's pinned baseline (`b.` before a key).",
        "",
    ]
    for section in SECTIONS:
        lines += [f"## `{section}`", "", "| key | link | unit | default | allowed | meaning |",
                  "|---|---|---|---|---|---|"]
        for inp in INPUTS.values():
            if inp.section == section:
                lines.append(f"| `{inp.key}` | `{inp.link}` | {_cell(inp.unit)} | {_cell(_default(inp.key))} | "
                             f"{_cell(inp.allowed_text())} | {_cell(inp.help)} |")
        lines.append("")
    lines += ["## Rules between inputs", "", "Refused (exit code 2, with a message that says what to change):", ""]
    lines += [f"- {_cell(rule.short)}" for rule in ERRORS]
    lines += ["", "Legal but reported as a warning (with a code the app recognises):", ""]
    lines += [f"- `{rule.code}`: {_cell(rule.short)}" for rule in WARNINGS]
    lines += ["", "## Output figures", "", "| figure | unit | better | how |", "|---|---|---|---|"]
    for family in FAMILIES:
        for fig in family.figures:
            lines.append(f"| `{fig.key}` | {_cell(fig.unit)} | {fig.better or ''} | {_cell(fig.how)} |")
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(scenario_reference(), end="")
