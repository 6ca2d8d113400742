"""Speed of the Calibrate page's PDF of each shipped profile, built as its download button builds it.

Run: python -m benchmarks.calibration_pdf_speed [--repeats 5] [--profile cpu-reference] [--in-process]

For each shipped profile (simulator/data/profiles/): the page's `profile_pdf(profile, spec, source, files)`
(app_pages/calibrate.py: `calibration_pdf` with the device the page registers, its source text and its file),
timed `--repeats` times after one untimed warm-up (imports, fonts, the Vega-Lite compiler, the chart helper
process), median reported with the size and page count (target: <= 2 s). `--in-process`: also the same build
with every chart drawn in this process (report.chart_process without its helper), side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Any

from benchmarks.decision_speed import PDF_TARGET_S, _median_s
from report.calibration_summary import iter_fits
from simulator.device_profile import device_from_profile
from simulator.devices import PROFILE_DIR, shipped_profiles


def page_pdf(stem: str, profile: dict[str, Any]) -> Callable[[], bytes]:
    """The download button's build of a shipped profile (app_pages/calibrate.py, profile_pdf and profile_files;
    the page itself is not importable outside Streamlit)."""
    from report.calibration_pdf import calibration_pdf

    spec = device_from_profile(profile)  # what state.register gives the page for a shipped profile
    source, files = f"shipped reference ({stem}.json)", [str(PROFILE_DIR / f"{stem}.json")]
    return lambda: calibration_pdf(profile, spec, source=source, files=files)


def pages_of(data: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(data)).pages)


@contextlib.contextmanager
def charts_in_process() -> Iterator[None]:
    """Charts drawn in this process, one after the other (report.chart_process without its helper)."""
    from report import chart_process

    saved, chart_process.draw_here = chart_process.draw_here, True
    try:
        yield
    finally:
        chart_process.draw_here = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="append", help="a shipped profile's stem (default: every one)")
    parser.add_argument("--in-process", action="store_true", help="also time it with the charts drawn in process")
    args = parser.parse_args()
    profiles = shipped_profiles()
    for stem in args.profile or sorted(profiles):
        profile = profiles[stem]
        build = page_pdf(stem, profile)
        pdf_s, data = _median_s(build, args.repeats)
        fits = sum(1 for section in profile["fits"].values() for _ in iter_fits(section))
        verdict = "meets" if pdf_s <= PDF_TARGET_S else "MISSES"
        print(f"Calibrate PDF {stem} ({fits} fits, {pages_of(data)} pages, {len(data):,} bytes): median "
              f"{pdf_s:.2f} s of {args.repeats}; {verdict} the {PDF_TARGET_S:.0f} s target")
        if args.in_process:
            with charts_in_process():
                alone_s, _ = _median_s(build, args.repeats)
            print(f"  the same, charts drawn in this process: median {alone_s:.2f} s of {args.repeats}")


if __name__ == "__main__":
    main()
