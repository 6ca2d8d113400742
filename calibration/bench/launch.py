"""Launch distributed steps under torchrun: one launch per (device, world size), many steps each
(torchrun costs ~3 s to start on the development VM).  Rows are written by the workers as they go;
whatever a crashed, killed or timed-out launch did not measure is recorded here as "failed", with the host and the
cause (calibration/faults.py). A rank whose process group broke says so (BROKEN_PREFIX) once its rows are written:
torchrun then gets AGENT_EXIT_GRACE_S to exit (its rendezvous store may be out of reach, where it would wait
minutes), not the rest of the launch's time.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from calibration.faults import torchrun_exit
from calibration.rows import RunWriteError, Step, append_row, failed_row, read_rows, step_key
from calibration.timing import available_cpus, is_oversubscribed

DONE_PREFIX = "CALIB_STEP_DONE "
ROUND_PREFIX = "CALIB_ROUND "  # a worker stored a sampling round: the launch is making progress
BROKEN_PREFIX = "CALIB_LAUNCH_BROKEN "  # a worker's last line when its process group broke: {"rank", "error"}
AGENT_EXIT_GRACE_S = 15.0  # after that line, torchrun exits in about a second unless its store is out of reach
SLOWEST_LINK_Bps = 1e6  # 8 Mbit/s: the slowest link a collective is given time for (collective_timeout_s)
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Rendezvous:
    """Multi-node c10d rendezvous.  Launch i uses port PORT+i and id ID-i, so a node that starts
    launch i+1 early never joins the store of a launch that is still closing."""

    nnodes: int
    node_rank: int
    endpoint: str
    rdzv_id: str
    ifname: str | None = None  # the network interface the collectives use (--ifname); None: the one that routes
    #                            to the rendezvous host (route_interface)

    def args(self, index: int) -> list[str]:
        """torchrun's rendezvous options for launch `index`. Node 0 hosts the c10d store whatever its hostname
        resolves to (`is_host`: torchrun otherwise decides by matching the endpoint against this machine's
        hostname, which fails on multi-homed nodes, in containers and on cloud VMs, and node 0 then waits as a
        client of a store nobody hosts); every other node is told it is not the host."""
        host = self.host
        port = self.endpoint.rpartition(":")[2]
        return [f"--nnodes={self.nnodes}", f"--node-rank={self.node_rank}", "--rdzv-backend=c10d",
                f"--rdzv-endpoint={host}:{int(port) + index}", f"--rdzv-id={self.rdzv_id}-{index}",
                f"--rdzv-conf=join_timeout=900,is_host={'true' if self.node_rank == 0 else 'false'}"]

    @property
    def host(self) -> str:
        host, _, port = self.endpoint.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--rdzv-endpoint {self.endpoint!r} must be HOST:PORT, e.g. 10.0.0.1:29400")
        return host.strip("[]")


IFNAME_VARS = ("GLOO_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")  # where gloo and NCCL read the interface to use


def route_to(host: str) -> tuple[str, str] | None:
    """(interface, local address) this machine reaches `host` by (iproute2: `ip -o route get ADDRESS`; where the
    address is this machine's own, the interface that holds it: `ip -o addr show to ADDRESS/32`, not loopback).
    gloo and NCCL otherwise pick the interface of the address this machine's hostname resolves to, and torchrun
    publishes that hostname as the workers' master address; on a multi-homed node (InfiniBand beside Ethernet), in
    a container or on a cloud VM neither is what the other nodes reach, and the first collective hangs. None when
    it cannot tell (no `ip`, an unresolvable host)."""
    import shutil
    import socket

    try:
        address = socket.getaddrinfo(host, None)[0][4][0]
    except (OSError, IndexError):
        return None
    ip = shutil.which("ip")
    if ip is None:
        return None

    def words(*args: str) -> list[str]:
        try:
            return subprocess.run([ip, "-o", *args], capture_output=True, text=True, timeout=5,
                                  check=False).stdout.split()
        except (OSError, subprocess.SubprocessError):
            return []

    route = words("route", "get", address)
    if route[:1] == ["local"]:  # our own address: the interface that holds it, which peers reach
        held = words("addr", "show", "to", f"{address}/{128 if ':' in address else 32}")
        return (held[1].rstrip(":").split("@")[0], address) if len(held) > 1 else None
    if "dev" not in route[:-1]:
        return None
    src = route[route.index("src") + 1] if "src" in route[:-1] else address
    return route[route.index("dev") + 1], src


def route_interface(host: str) -> str | None:
    """The local interface that routes to `host` (route_to), or None."""
    found = route_to(host)
    return None if found is None else found[0]


def interface_env(rdzv: Rendezvous | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The interface variables a multi-node launch sets: the user's --ifname, else the interface that routes to
    the rendezvous host; never over a variable the user set in the environment."""
    if rdzv is None:
        return {}
    name = rdzv.ifname or route_interface(rdzv.host)
    return {} if not name else {var: name for var in IFNAME_VARS if not environ.get(var)}


@dataclass
class LaunchResult:
    rc: int | None
    timed_out: bool
    log_path: Path
    missing: int  # steps that got a "failed" row because the launch ended before measuring them
    broke: str | None = None  # why the launch ended early (a worker's broken group, a killed worker), else None


@dataclass
class _Followed:
    """How a torchrun launch ended, as `_run_and_follow` saw it."""

    rc: int | None
    timed_out: bool  # stopped at the launch's deadline
    broke: str | None = None  # the first BROKEN_PREFIX line's error, where a worker printed one


def launch_timeout_s(steps: list[Step], mode: str, oversubscribed: bool) -> float:
    per_step_s = {"tiny": 10.0, "quick": 8.0, "full": 30.0}.get(mode, 30.0)
    return (120.0 + per_step_s * len(steps)) * (3.0 if oversubscribed else 1.0)


def collective_timeout_s(steps: list[Step], world_size: int, launch_s: float) -> float:
    """How long a rank waits in one collective before its group counts as broken (the process group's timeout):
    60 s, plus the largest message of the launch crossing a SLOWEST_LINK_Bps link from every rank; at most half
    the launch. A lost link is then named after this long (93 s for the quick grid's 16 MiB on two ranks), not
    after half the launch (348 s for its four collectives)."""
    biggest = max((float(s.params.get("bytes") or s.params.get("grad_bytes") or 0) for s in steps), default=0.0)
    return min(max(60.0, launch_s / 2), 60.0 + world_size * biggest / SLOWEST_LINK_Bps)


def _set_pdeathsig() -> None:
    """Child dies (SIGTERM) when its parent does: a SIGKILLed runner leaves no torchrun behind."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child_setup() -> None:
    """In the forked child, before exec: die with the parent, and take signals again (see _spawn)."""
    _set_pdeathsig()
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)


_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _run_and_follow(cmd: list[str], env: dict[str, str], log: TextIO, deadline: float,
                    on_done: Callable[[dict[str, Any]], None] | None, quiet_s: float = 0.0) -> _Followed:
    """Start torchrun in its own process group, relay its step lines, stop it on timeout or Ctrl-C, and within
    AGENT_EXIT_GRACE_S of a worker saying its group broke. A step or round reported moves the deadline to at least
    `quiet_s` ahead: a launch over a slow link (a straggler) runs past its planned time while it makes progress."""
    proc: subprocess.Popen[str] | None = None
    timed_out = False
    broke: str | None = None
    try:
        # A SIGINT landing inside fork() is swallowed by an at-fork handler ("Exception ignored in
        # _releaseLock"): hold SIGINT/SIGTERM until Popen returns, then let them through.
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, env=env, cwd=REPO_ROOT,
                                    start_new_session=True, preexec_fn=_child_setup)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        lines: queue.Queue[str | None] = queue.Queue()
        stdout = proc.stdout
        assert stdout is not None

        def pump() -> None:
            for line in stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=pump, daemon=True).start()
        eof = False
        while not eof:
            if time.monotonic() > deadline:
                timed_out = broke is None
                if broke is not None:
                    log.write(f"calibration: torchrun had not exited {AGENT_EXIT_GRACE_S:g} s after its worker's "
                              f"group broke (its rendezvous store may be out of reach); stopped\n")
                _stop(proc, term_wait_s=15.0 if broke is None else 2.0)
                break
            try:
                line = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                eof = True
            elif line.startswith((DONE_PREFIX, ROUND_PREFIX)):
                if broke is None:
                    deadline = max(deadline, time.monotonic() + quiet_s)
                if on_done and line.startswith(DONE_PREFIX):
                    on_done(json.loads(line[len(DONE_PREFIX):]))
            elif line.startswith(BROKEN_PREFIX):
                log.write(line)
                broke = broke or str(json.loads(line[len(BROKEN_PREFIX):]).get("error") or "process group broke")
                deadline = min(deadline, time.monotonic() + AGENT_EXIT_GRACE_S)
            else:
                log.write(line)
        try:  # stdout closed: the launch is ending; give it what is left of its time
            return _Followed(proc.wait(timeout=max(5.0, deadline - time.monotonic())), timed_out, broke)
        except subprocess.TimeoutExpired:
            _stop(proc, term_wait_s=15.0 if broke is None else 2.0)
            return _Followed(proc.poll(), broke is None, broke)
    except BaseException:
        if proc is not None:
            _stop(proc)  # Ctrl-C or SIGTERM of the runner: take the launch down with it
        raise


def _stop(proc: subprocess.Popen[str], term_wait_s: float = 15.0) -> None:
    """SIGTERM the launch's own process group (torchrun and its workers), then SIGKILL."""
    for sig, wait_s in ((signal.SIGTERM, term_wait_s), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def launch(steps: list[Step], *, device: str, world_size: int, rows_path: Path, run_id: str, mode: str,
           work_dir: Path, index: int = 0, rdzv: Rendezvous | None = None,
           on_done: Callable[[dict[str, Any]], None] | None = None,
           timeout_s: float | None = None, samples_path: Path | None = None,
           prior: dict[str, list[float]] | None = None) -> LaunchResult:
    """Run `steps` under torchrun; rows go to `rows_path` as each step ends, interleaved collectives' samples to
    `samples_path` per round (`prior`: samples stored by an earlier launch of these steps, continued from)."""
    nnodes = rdzv.nnodes if rdzv else 1
    per_node = max(1, world_size // nnodes)
    oversubscribed = is_oversubscribed(per_node, device)
    threads = max(1, available_cpus() // per_node)  # OMP threads per rank: cores shared out
    timeout_s = timeout_s or launch_timeout_s(steps, mode, oversubscribed)
    pg_timeout_s = collective_timeout_s(steps, world_size, timeout_s)
    # this node's address on the route to the rendezvous host: torchrun's --local-addr, which the rank-0 agent
    # publishes as the workers' master address (else its hostname, which other nodes may resolve to themselves),
    # and where the workers' liveness ports listen (faults.Peer)
    route = route_to(rdzv.host) if rdzv else None
    node_addr = route[1] if route else "127.0.0.1"
    where = f"node {rdzv.node_rank} ({node_addr})" if rdzv else "this node"
    tag = f"{launch_tag(run_id)}_{device}_ws{world_size}_{index}"  # per run: a resumed run never reuses a name
    spec_path = work_dir / f"launch_{tag}.json"
    log_path = work_dir / f"launch_{tag}.log"
    spec = {"steps": [s.as_dict() for s in steps], "rows_path": str(rows_path), "run_id": run_id, "mode": mode,
            "device": device, "threads": threads, "ranks_per_node": per_node,
            "pg_timeout_s": pg_timeout_s, "tag": tag,
            "node_rank": rdzv.node_rank if rdzv else 0, "node_addr": node_addr,
            "samples_path": str(samples_path) if samples_path is not None else None,
            "prior": {s.key(): list((prior or {}).get(s.key(), [])) for s in steps if (prior or {}).get(s.key())}}
    try:
        work_dir.mkdir(parents=True, exist_ok=True)
        spec_path.write_text(json.dumps(spec))
    except OSError as exc:
        raise RunWriteError.wrap(exc, spec_path, "writing the launch spec") from exc
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={per_node}", "--max-restarts=0"]
    cmd += [*rdzv.args(index), *([f"--local-addr={node_addr}"] if route else [])] if rdzv else ["--standalone"]
    cmd += ["-m", "calibration.dist_worker", str(spec_path)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p),
           **interface_env(rdzv, os.environ)}
    t_start = time.time()
    log_from = log_path.stat().st_size if log_path.exists() else 0  # a resumed run appends to the same log
    with log_path.open("a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        ended = _run_and_follow(cmd, env, log, time.monotonic() + timeout_s, on_done, quiet_s=2 * pg_timeout_s)
    with log_path.open("rb") as f:
        f.seek(log_from)
        log_text = f.read().decode(errors="replace")
    missing, why = _record_missing(steps, rows_path, t_start, ended, timeout_s, log_path, log_text, where, run_id,
                                   oversubscribed, on_done)
    return LaunchResult(ended.rc, ended.timed_out, log_path, missing,
                        ended.broke or (why if missing or ended.timed_out else None))


def _record_missing(steps: list[Step], rows_path: Path, t_start: float, ended: _Followed, timeout_s: float,
                    log_path: Path, log_text: str, where: str, run_id: str, oversubscribed: bool,
                    on_done: Callable[[dict[str, Any]], None] | None) -> tuple[int, str]:
    """Failed rows for the steps the launch ended before, naming this node and why it ended (faults.torchrun_exit,
    from this launch's part of the log); (how many, why)."""
    written = {step_key(r) for r in read_rows(rows_path) if float(r.get("t_unix", 0)) >= t_start - 1}
    missing = [s for s in steps if s.key() not in written]
    why = torchrun_exit(ended.rc, ended.timed_out, timeout_s, log_text, where)
    if not missing:
        return 0, why
    tail = " | ".join(line.strip() for line in log_text.strip().splitlines()[-6:])
    for s in missing:
        row = failed_row(s, f"{why} before this step finished; log {log_path.name}: {tail}", run_id=run_id,
                         oversubscribed=oversubscribed)
        append_row(rows_path, row)
        if on_done:
            on_done({"key": s.key(), "status": "failed", "label": label(s)})
    return len(missing), why


def record_not_launched(steps: list[Step], rows_path: Path, run_id: str, cause: str,
                        on_done: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Failed rows for steps whose launch is not started after an earlier one broke (--resume measures them)."""
    print(f"torchrun: {len(steps)} distributed steps not launched, an earlier launch broke: {cause}",
          file=sys.stderr, flush=True)
    for s in steps:
        append_row(rows_path, failed_row(s, f"not launched: an earlier launch of this run broke ({cause})",
                                         run_id=run_id))
        if on_done:
            on_done({"key": s.key(), "status": "failed", "label": label(s)})


def launch_tag(run_id: str) -> str:
    """The run id as a file-name part: letters, digits, '-', '.' and '_' only, at most 64 characters."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-._") else "_" for c in str(run_id))[:64] or "run"


def label(step: Step) -> str:
    params = " ".join(f"{k}={v}" for k, v in step.params.items())
    return f"{step.bench} {step.device} {step.dtype or ''} ws={step.world_size} {params}".replace("  ", " ")
