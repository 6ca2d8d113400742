"""A distributed failure named: which host, and what happened to it (issue 22, faults across hosts).

Seen from a rank (`diagnose`): every rank of a launch publishes its node (the runner's --node-rank and the address
that routes to the rendezvous host) and a liveness port: a listening socket nobody accepts on, which the kernel
answers for as long as the process lives. When a collective raises, `diagnose` reads the backend's error (the address of a peer that reset or
closed its connection, or a time-out) and probes the suspects' liveness ports: refused means the peer's process is
gone (it died or was killed), no answer means the network to it is lost, an answer means it lives (so a time-out
is a stuck or slow peer). The failure then names the host and the cause:

    peer died: node 1 (10.77.0.2), rank 1: its process is gone (connection refused); seen by node 0 (10.77.0.1),
    rank 0: Read error [10.77.0.2]:53944: Connection reset by peer

Seen from a node's runner (`torchrun_exit`): the launch's exit status and torchrun's own report of its first
failed worker (rank, exit code, signal), or the launch's time limit.

Imports no torch: the worker gathers the table (`Peer`s) with its process group.
"""

from __future__ import annotations

import re
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

PROBE_TIMEOUT_S = 3.0  # a live peer on a working network answers a TCP connect in milliseconds
PEER_DIED, CONNECTION_LOST, TIMED_OUT = "peer died", "connection lost", "timed out"

_ADDRESS = re.compile(r"\[([0-9A-Fa-f:.]+)\]:\d+")  # gloo: "Read error [10.77.0.2]:53944: Connection reset ..."
_WAITED_MS = re.compile(r"[Tt]imed out waiting (\d+)\s*ms")  # gloo: "Timed out waiting 93000ms for recv ..."
_TIMEOUT = re.compile(r"timed out|timeout", re.IGNORECASE)
_CLOSED = re.compile(r"Connection (reset|closed|refused)|Broken pipe|EOF|by peer|remote process|network error",
                     re.IGNORECASE)
_ROOT_RANK = re.compile(r"^\s*rank\s*:\s*(\d+)", re.MULTILINE)  # torchrun's "Root Cause" block
_ROOT_EXIT = re.compile(r"^\s*exitcode\s*:\s*(-?\d+)", re.MULTILINE)
_SOURCE = re.compile(r"\[[^\]\s]*\.(?:cc|cpp|h|py):\d+\]\s*")  # "[/__w/pytorch/.../pair.cc:537] "


@dataclass(frozen=True)
class Peer:
    """One rank of the launch: where it runs and the port its process answers on while it lives."""

    rank: int
    node_rank: int
    addr: str
    port: int

    @property
    def where(self) -> str:
        return f"node {self.node_rank} ({self.addr})"


def listen(addr: str) -> socket.socket:
    """This process's liveness port: bound on `addr` (the node's address peers reach), never accepted on; the
    kernel completes a peer's connect while the process lives and refuses it once the process is gone."""
    sock = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((addr, 0))
    except OSError:  # not an address of this machine (a NAT's): every interface, peers still reach it
        sock.bind(("", 0))
    sock.listen(64)
    return sock


def probe(peer: Peer, timeout_s: float = PROBE_TIMEOUT_S) -> str:
    """"alive", "gone" (connection refused: the process ended) or why it cannot be reached."""
    try:
        with socket.create_connection((peer.addr, peer.port), timeout=timeout_s):
            return "alive"
    except ConnectionRefusedError:
        return "gone"
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)


def backend_text(error: str) -> str:
    """The backend's error in one line, without its source locations and its boilerplate advice."""
    text = _SOURCE.sub("", " ".join(error.split()))
    text = re.sub(r" at [\w.]+\.py:\d+$", "", text.split(". This is typically caused", 1)[0])
    return re.sub(r"^\w+Error: ", "", text)[:300]


def suspects(error: str, me: Peer, peers: list[Peer]) -> list[Peer]:
    """The peers the error points at (those at an address it names), else every other rank."""
    named = set(_ADDRESS.findall(error))
    others = [p for p in peers if p.rank != me.rank]
    return [p for p in others if p.addr in named] or others


def diagnose(error: str, me: Peer, peers: list[Peer], timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """The failure in words that name the host and the cause, from `error` (a collective's exception text) and
    probes of the suspects; None when the error is not a communication failure (the row keeps its own text)."""
    timed_out, closed = bool(_TIMEOUT.search(error)), bool(_CLOSED.search(error))
    if not (timed_out or closed):
        return None
    targets = suspects(error, me, peers)
    if not targets:
        return None
    with ThreadPoolExecutor(max_workers=min(16, len(targets))) as pool:
        verdicts = list(pool.map(lambda p: probe(p, timeout_s), targets))
    gone = [p for p, v in zip(targets, verdicts, strict=True) if v == "gone"]
    lost = [(p, v) for p, v in zip(targets, verdicts, strict=True) if v not in ("gone", "alive")]
    seen = f"seen by {me.where}, rank {me.rank}: {backend_text(error)}"
    if gone:
        return f"{PEER_DIED}: {_ranks(gone)}: its process is gone (connection refused); {seen}"
    if lost:
        return f"{CONNECTION_LOST}: {_ranks([p for p, _ in lost])}: {lost[0][1]}; {seen}"
    alive = _ranks(targets)
    waited = _WAITED_MS.search(error)
    if timed_out:
        span = f" for {int(waited.group(1)) / 1000:g} s" if waited else ""
        return f"{TIMED_OUT}: {alive} answers but sent nothing{span} (stuck, or far slower than the rest); {seen}"
    return f"{CONNECTION_LOST}: {alive} closed the connection though its process lives; {seen}"


def _ranks(peers: list[Peer]) -> str:
    """"node 1 (10.77.0.2), rank 1" -- one node's ranks together, nodes in order."""
    by_node: dict[str, list[int]] = {}
    for p in sorted(peers, key=lambda p: (p.node_rank, p.rank)):
        by_node.setdefault(p.where, []).append(p.rank)
    return "; ".join(f"{where}, rank{'s' if len(rs) > 1 else ''} {', '.join(map(str, rs))}"
                     for where, rs in by_node.items())


def torchrun_exit(rc: int | None, timed_out: bool, timeout_s: float, log_text: str, where: str) -> str:
    """Why a launch ended before its steps did, as this node's runner sees it: its time limit, torchrun killed,
    or torchrun's first failed worker (a negative exit code is the signal that killed it)."""
    if timed_out:
        return (f"{TIMED_OUT}: {where}: the torchrun launch ran past its {timeout_s:.0f} s limit with no progress "
                f"reported and was stopped")
    if rc is not None and rc < 0:
        return f"worker died: {where}: torchrun itself was killed by {_signal_name(-rc)}"
    cause = log_text.rpartition("Root Cause")[2]
    ranks, codes = _ROOT_RANK.findall(cause), _ROOT_EXIT.findall(cause)
    if ranks and codes:
        code = int(codes[0])
        how = f"was killed by {_signal_name(-code)}" if code < 0 else f"exited with status {code}"
        return f"worker died: {where}: its worker, rank {ranks[0]}, {how}; torchrun exited with rc={rc}"
    return f"torchrun launch exited with rc={rc}"


def _signal_name(number: int) -> str:
    try:
        return f"{signal.Signals(number).name} (signal {number})"
    except ValueError:
        return f"signal {number}"
