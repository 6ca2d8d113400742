"""A calibration run's progress: a tqdm bar on stderr and, for programs, `PROGRESS {json}` lines on stdout."""

from __future__ import annotations

import json
import sys
from typing import Any


class Progress:
    """A tqdm bar on stderr (moving per sampling round inside an interleaved group) and, with `jsonl`, a
    `PROGRESS {json}` line on stdout per finished step and per round: {"done", "total", "step", "status"?, "stage",
    "steps_done"} plus, for a round, "phase" ("warmup" | "sampling"), "round", "points", "points_done", "samples",
    "samples_planned", "elapsed_s", "eta_s", "warmed" and "device". "stage" says what the run is doing ("local": the
    local benches' interleaved group; "distributed": the torchrun launches; "quality": the quality calibration);
    "steps_done" is the bar's position, finished steps plus the share of a group's planned samples taken (its steps
    finish only at the end of their samples, so through a group `done` alone stands still). A round's line is
    printed only after its samples are stored (fsync'd), so no line claims more than is kept.
    """

    def __init__(self, total: int, done: int, jsonl: bool = True) -> None:
        from tqdm import tqdm

        self.total, self.done, self.failed, self.jsonl = total, done, 0, jsonl
        self.stage = "starting"
        self.bar = tqdm(total=total, initial=done, file=sys.stderr, unit="step", dynamic_ncols=True)

    def _line(self, msg: dict[str, Any]) -> None:
        if self.jsonl:
            print("PROGRESS " + json.dumps({**msg, "stage": self.stage, "steps_done": self.bar.n}), flush=True)

    def emit(self, step: str, status: str | None = None, advance: bool = True, stage: str | None = None) -> None:
        if stage is not None:
            self.stage = stage
        if advance:
            self.done += 1
            self.failed += status == "failed"
            self.bar.n = max(self.done, self.bar.n)  # a round may have moved it past the finished steps
        self.bar.set_postfix_str(step[:60], refresh=True)
        msg: dict[str, Any] = {"done": self.done, "total": self.total, "step": step}
        if status:
            msg["status"] = status
        self._line(msg)

    def round(self, device: str, group_steps: int, rep: dict[str, Any]) -> None:
        """Progress inside an interleaved group: the bar moves by the fraction of the group's planned
        samples taken (steps finish only at the end of their samples), and the postfix tells the round."""
        frac = rep["samples"] / rep["samples_planned"] if rep.get("samples_planned") else 0.0
        finished_in_group = rep.get("points_done", 0)
        self.bar.n = round(min(self.total, self.done + max(0.0, group_steps * min(1.0, frac) - finished_in_group)),
                           2)
        eta = f", ~{rep['eta_s']:.0f} s left" if rep.get("eta_s") is not None else ""
        if rep.get("phase") == "warmup":
            text = f"{device}: warming up {rep.get('warmed', 0)}/{rep['points']} points"
        else:
            text = (f"{device}: round {rep['round']}, {rep['points_done']}/{rep['points']} points done, "
                    f"{rep['samples']}/{rep['samples_planned']} samples{eta}")
        self.bar.set_postfix_str(text, refresh=True)
        self._line({"done": self.done, "total": self.total, "step": text, **rep, "device": device})

    def note(self, text: str, stage: str) -> None:
        """A line of a stage that has no steps of its own (the quality calibration's progress)."""
        self.emit(text, advance=False, stage=stage)

    def close(self) -> None:
        self.bar.close()
