"""What each page shows, gathered from the registered families' declarations (`Family.fields`, `Family.sections`):
its widget groups, its key figures, its figure sections and the families whose inputs its PDF lists.

The pages (app_pages/) and the PDFs (report/) read these; neither keeps a list of a family's inputs or figures, so
a family registered in simulator/families/__init__.py appears on every page it names."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import simulator.families as families
from simulator.inputs import FIGURES
from simulator.registry import Family, FieldGroup, Page, Section

__all__ = ["field_group", "field_groups", "key_figures", "listed_inputs", "more_groups", "other_main_groups", "page_inputs", "radio_keys",
           "sections", "source_figures"]


def _registered() -> tuple[Family, ...]:
    return families.FAMILIES  # read at call time: a family registered after this module's import is seen too


def _merged(parts: Iterable[tuple[int, int, FieldGroup]]) -> list[FieldGroup]:
    """Groups of one title as one: keys in (order, family order), `main` if any part is, the lowest order."""
    by_title: dict[str, list[tuple[int, int, FieldGroup]]] = {}
    for part in parts:
        by_title.setdefault(part[2].title, []).append(part)
    merged = []
    for items in by_title.values():
        items.sort(key=lambda p: (p[2].order, p[0], p[1]))
        first = items[0][2]
        merged.append(replace(first, keys=tuple(k for *_, g in items for k in g.keys),
                              radio=tuple(k for *_, g in items for k in g.radio),
                              main=any(g.main for *_, g in items), order=min(g.order for *_, g in items)))
    return sorted(merged, key=lambda g: g.order)


def field_groups(page: Page) -> list[FieldGroup]:
    """The page's widget groups, main and more, merged by title and in page order."""
    return _merged((i, j, g) for i, f in enumerate(_registered()) for j, g in enumerate(f.fields) if g.page == page)


def field_group(page: Page, title: str) -> FieldGroup:
    """One group of the page by its title (a page lays out its main groups by title)."""
    for group in field_groups(page):
        if group.title == title:
            return group
    known = ", ".join(repr(g.title) for g in field_groups(page))
    raise KeyError(f"no field group {title!r} on the {page} page; its groups are {known}")


def more_groups(page: Page, laid_out: Iterable[str] = ()) -> list[FieldGroup]:
    """The groups the page shows under "More settings": every group not main, and none the page lays out itself
    (`laid_out`: titles)."""
    skip = set(laid_out)
    return [g for g in field_groups(page) if not g.main and g.title not in skip]


def other_main_groups(page: Page, laid_out: Iterable[str]) -> list[FieldGroup]:
    """The page's main groups it does not lay out itself (`laid_out`: titles): shown as rows under its own."""
    skip = set(laid_out)
    return [g for g in field_groups(page) if g.main and g.title not in skip]


def page_inputs(page: Page) -> tuple[str, ...]:
    """Every input key the page shows, in page order (its share links carry exactly these)."""
    return tuple(dict.fromkeys(k for g in field_groups(page) for k in g.keys))


def radio_keys(page: Page) -> frozenset[str]:
    """The page's choices shown as buttons."""
    return frozenset(k for g in field_groups(page) for k in g.radio)


def listed_inputs(page: Page) -> tuple[str, ...]:
    """The inputs the page's PDF lists, in family order: every input of a family with key figures on the page (the
    ones the page does not show too: they move its figures) and every input the page shows."""
    shown = set(page_inputs(page))
    headline = {f.name for f in _registered() if any(page in s.pages and s.headline for s in f.sections)}
    return tuple(inp.key for f in _registered() for inp in f.inputs if f.name in headline or inp.key in shown)


def _sections(page: Page, headline: bool) -> list[Section]:
    parts = [(s.order, i, j, s) for i, f in enumerate(_registered()) for j, s in enumerate(f.sections)
             if page in s.pages and s.headline == headline]
    return [s for *_, s in sorted(parts, key=lambda p: p[:3])]


def key_figures(page: Page) -> tuple[str, ...]:
    """The page's key figures (its headline sections' figures, in order): the first table of its PDF."""
    return tuple(dict.fromkeys(k for s in _sections(page, True) for k in s.figures))


def sections(page: Page) -> list[Section]:
    """The page's own figure sections (not headline), each a titled table on the page and in its PDF."""
    return _sections(page, False)


def source_figures(page: Page) -> tuple[str, ...]:
    """The figures a page's sources table explains: its key figures and sections', then every charted figure of the
    families with key figures on the page."""
    own = [k for s in sections(page) for k in s.figures]
    families = {k.split(".")[0] for k in key_figures(page)}
    rest = [k for k, spec in FIGURES.items() if spec.chart and k.split(".")[0] in families]
    return tuple(dict.fromkeys((*key_figures(page), *own, *rest)))
