"""Test hosts on one Linux machine: network namespaces joined by veth links through a bridge, each with an address
of its own and, where asked, its sending rate shaped with `tc` (tbf), so calibration's distributed parts can run
across "hosts" over a network whose rate we impose (issue 22). Needs root and iproute2 (`ip netns`, veth, bridge,
`tc`); `available()` says what is missing, in words a skip message can use.

Only addresses inside the namespaces (10.77.0.0/24 by default) and loopback are used; the namespaces share the
machine's hostname (no UTS namespace), so a hostname resolves to none of their addresses: the case of the
multi-homed node, the container and the cloud VM, which calibration must survive. `test_hosts(...)` tears
everything down when its block ends, a step fails or the run is interrupted (and names are unique per process,
so a leftover from a killed run never collides).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

SUBNET = "10.77.0"
BURST_S = 0.01  # a shaped link's token bucket holds 10 ms of its rate


def _ip(*args: str, netns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["netns", "exec", netns, "ip"] if netns else []), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=check, timeout=30)


def available() -> str | None:
    """None when test hosts can be made here, else why not (for a skip message)."""
    if os.geteuid() != 0:
        return "test hosts need root (network namespaces, veth links and tc)"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"test hosts need `{tool}` (iproute2)"
    probe = f"mfprobe{os.getpid()}"
    try:
        made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True, timeout=30)
        if made.returncode != 0:
            return f"`ip netns add` failed here: {made.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True, timeout=30)
    return None


@dataclass
class TestHosts:
    """`n` hosts: namespace i has address SUBNET.(i+1) on its end of a veth link to a bridge in the root namespace."""

    n: int
    tag: str = field(default_factory=lambda: f"{os.getpid() % 100000}")
    made: list[tuple[str, str]] = field(default_factory=list)  # ("netns" | "link", name): what teardown removes

    __test__ = False  # not a pytest test class

    @property
    def bridge(self) -> str:
        return f"mfbr{self.tag}"

    def netns(self, i: int) -> str:
        return f"mfh{self.tag}-{i}"

    def dev(self, i: int) -> str:
        """The host's own interface (inside its namespace)."""
        return f"mfp{self.tag}{i}"

    def outside(self, i: int) -> str:
        """The bridge's end of host i's link (in the root namespace): the cable's far end."""
        return f"mfv{self.tag}{i}"

    def addr(self, i: int) -> str:
        return f"{SUBNET}.{i + 1}"

    def up(self) -> TestHosts:
        _ip("link", "add", self.bridge, "type", "bridge")
        self.made.append(("link", self.bridge))
        _ip("link", "set", self.bridge, "up")
        for i in range(self.n):
            ns, outside = self.netns(i), self.outside(i)
            _ip("netns", "add", ns)
            self.made.append(("netns", ns))
            _ip("link", "add", outside, "type", "veth", "peer", "name", self.dev(i))
            self.made.append(("link", outside))
            _ip("link", "set", self.dev(i), "netns", ns)
            _ip("link", "set", outside, "master", self.bridge, "up")
            _ip("addr", "add", f"{self.addr(i)}/24", "dev", self.dev(i), netns=ns)
            _ip("link", "set", self.dev(i), "up", netns=ns)
            _ip("link", "set", "lo", "up", netns=ns)
        return self

    def shape(self, i: int, rate_mbit: float, latency_ms: int = 50) -> None:
        """Host i sends at most `rate_mbit` Mbit/s (a token bucket on its interface: tc tbf). The bucket holds
        BURST_S of the rate (at least 256 kbit): tbf refills it once per kernel tick, so a bucket smaller than a
        tick's worth of the rate (1 Gbit/s at 250 Hz: 4 Mbit) caps the link below its rate (tc-tbf(8))."""
        burst_kbit = max(256, math.ceil(rate_mbit * 1000 * BURST_S))
        subprocess.run(["ip", "netns", "exec", self.netns(i), "tc", "qdisc", "replace", "dev", self.dev(i), "root",
                        "tbf", "rate", f"{rate_mbit:g}mbit", "burst", f"{burst_kbit}kbit", "latency",
                        f"{latency_ms}ms"], check=True, capture_output=True, text=True, timeout=30)

    def link(self, i: int, up: bool) -> None:
        """Cut host i's link (its bridge end down: packets to and from it are dropped, as with a pulled cable)
        or mend it."""
        _ip("link", "set", self.outside(i), "up" if up else "down")

    def popen(self, i: int, cmd: Sequence[str], **kwargs: object) -> subprocess.Popen:
        """`cmd` run on host i (inside its namespace)."""
        return subprocess.Popen(["ip", "netns", "exec", self.netns(i), *cmd], **kwargs)  # type: ignore[call-overload]

    def down(self) -> None:
        """Remove what `up` made, namespaces first (their veth ends go with them), whatever state it is in."""
        for kind, name in reversed(self.made):
            if kind == "netns":
                subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
            else:
                subprocess.run(["ip", "link", "del", name], capture_output=True, timeout=30)
        self.made.clear()


@contextlib.contextmanager
def test_hosts(n: int, rate_mbit: float | None = None) -> Iterator[TestHosts]:
    """`n` test hosts (2-4), each sending at most `rate_mbit` Mbit/s where given; torn down on every way out."""
    if not 2 <= n <= 4:
        raise ValueError(f"test hosts: n = {n}; make 2 to 4")
    hosts = TestHosts(n)
    try:
        hosts.up()
        if rate_mbit is not None:
            for i in range(n):
                hosts.shape(i, rate_mbit)
        yield hosts
    finally:
        hosts.down()


test_hosts.__test__ = False  # type: ignore[attr-defined]


T = TypeVar("T")


def skipped(why: str | None) -> bool:
    """Says why a benchmark cannot run here (no root, no network namespaces) and returns True; False when it can."""
    if why is not None:
        print(f"skipped: {why}", file=sys.stderr)
    return why is not None


def run_each(items: Sequence[T], run: Callable[[T, Path], dict[str, Any]], prefix: str, keep: Path | None,
             names: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """`run(item, folder)` for each item, in its own folder (`names`, else setting0, setting1, ...) under `keep` or a
    temporary folder removed at the end; each result printed as one JSON line as it comes."""
    results = []
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        base = keep or Path(tmp)
        for k, item in enumerate(items):
            r = run(item, base / (names[k] if names else f"setting{k}"))
            print(json.dumps(r), flush=True)
            results.append(r)
    return results
