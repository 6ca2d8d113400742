"""The families' own figure sections of a page (simulator.presentation.sections) as the page and its PDF show them:
each section with the figures the plan has, and one row per figure (label, value, P10-P90)."""

from __future__ import annotations

from typing import Any

from report import formatting as fmt
from simulator import presentation
from simulator.registry import Page, Section


def shown(plan: Any, page: Page) -> list[tuple[Section, list[Any]]]:
    """(section, its figures in the plan) for each of the page's sections with at least one."""
    found = [(s, [plan.figures[k] for k in s.figures if k in plan.figures]) for s in presentation.sections(page)]
    return [(s, figures) for s, figures in found if figures]


def band(figure: Any) -> str:
    """A figure's P10-P90 by its unit, or "" when it has none."""
    return fmt.span(figure.low, figure.high, figure.unit) if figure.low is not None and figure.high is not None else ""


def row(figure: Any) -> list[str]:
    """[label, value by unit, P10-P90 or ""]."""
    return [figure.label, fmt.by_unit(figure.value, figure.unit), band(figure)]
