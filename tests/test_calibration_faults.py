"""Naming a distributed failure (calibration/faults.py) and bounding the wait on a launch that broke or stalls
(calibration/bench/launch.py), without torchrun or test hosts: liveness ports on this machine, torchrun's own
failure report as text, and a stand-in launch that prints the workers' lines."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

import pytest

from calibration.bench import launch
from calibration.faults import Peer, diagnose, listen, torchrun_exit
from calibration.rows import Step, read_rows

TIMEOUT = ("RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/unbound_buffer.cc:78] Timed out "
           "waiting 93554ms for recv operation to complete at distributed_c10d.py:3252")
RESET = ("RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
         "[{addr}]:53944: Connection reset by peer. This is typically caused by a remote worker hanging or bugs in "
         "the application. Check the logs of the remote worker before reporting an error. at distributed_c10d.py:3252")
ROOT_CAUSE = """torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
Root Cause (first observed failure):
[0]:
  time      : 2026-12-08_00:21:41
  host      : localhost
  rank      : 1 (local_rank: 0)
  exitcode  : -9 (pid: 32650)  (SIGKILL)
  error_file: <N/A>
  traceback : Signal 9 (SIGKILL) received by PID 32650
"""


@pytest.fixture
def me():
    sock = listen("127.0.0.1")
    yield Peer(0, 0, "127.0.0.1", sock.getsockname()[1])
    sock.close()


def test_a_peer_whose_process_is_gone_is_named_as_dead(me):
    gone = listen("127.0.0.1")
    peer = Peer(1, 1, "127.0.0.1", gone.getsockname()[1])
    gone.close()  # its process ended: connect is refused
    said = diagnose(RESET.format(addr="127.0.0.1"), me, [me, peer])
    assert said == ("peer died: node 1 (127.0.0.1), rank 1: its process is gone (connection refused); seen by "
                    "node 0 (127.0.0.1), rank 0: Read error [127.0.0.1]:53944: Connection reset by peer")


def test_a_time_out_with_a_live_peer_is_a_stuck_or_slow_peer(me):
    alive = listen("127.0.0.1")
    try:
        said = diagnose(TIMEOUT, me, [me, Peer(1, 1, "127.0.0.1", alive.getsockname()[1])])
    finally:
        alive.close()
    assert said is not None and said.startswith("timed out: node 1 (127.0.0.1), rank 1 answers but sent nothing "
                                                "for 93.554 s"), said
    assert said.endswith("Timed out waiting 93554ms for recv operation to complete"), said


def test_a_peer_that_does_not_answer_is_a_lost_connection(me):
    silent = socket.socket()  # a port whose accept queue is full drops new connections unanswered, as a cut link does
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    port = silent.getsockname()[1]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):  # fills the queue
            said = diagnose(TIMEOUT, me, [me, Peer(1, 2, "127.0.0.1", port)], timeout_s=0.5)
    finally:
        silent.close()
    assert said == ("connection lost: node 2 (127.0.0.1), rank 1: no answer within 0.5 s; seen by node 0 "
                    "(127.0.0.1), rank 0: Timed out waiting 93554ms for recv operation to complete"), said


def test_the_peer_the_error_names_is_the_one_probed_and_other_errors_are_left_alone(me):
    gone = listen("127.0.0.2")
    port = gone.getsockname()[1]
    gone.close()
    alive = listen("127.0.0.1")
    try:
        peers = [me, Peer(1, 1, "127.0.0.1", alive.getsockname()[1]), Peer(2, 2, "127.0.0.2", port)]
        said = diagnose(RESET.format(addr="127.0.0.2"), me, peers)
        assert said is not None and said.startswith("peer died: node 2 (127.0.0.2), rank 2:"), said
        assert diagnose("ValueError: matrix shapes do not match", me, peers) is None
    finally:
        alive.close()


def test_a_runner_names_its_own_killed_worker_torchrun_and_the_time_limit():
    where = "node 1 (10.77.0.2)"
    assert torchrun_exit(1, False, 264.0, ROOT_CAUSE, where) == (
        "worker died: node 1 (10.77.0.2): its worker, rank 1, was killed by SIGKILL (signal 9); torchrun exited "
        "with rc=1")
    assert torchrun_exit(-9, False, 264.0, "", where) == (
        "worker died: node 1 (10.77.0.2): torchrun itself was killed by SIGKILL (signal 9)")
    assert torchrun_exit(None, True, 264.0, ROOT_CAUSE, where).startswith(
        "timed out: node 1 (10.77.0.2): the torchrun launch ran past its 264 s limit")
    assert torchrun_exit(2, False, 264.0, "usage: torchrun ...", where) == "torchrun launch exited with rc=2"


def test_a_collective_times_out_after_its_largest_message_not_half_the_launch():
    steps = [Step("all_reduce", "cpu", "fp32", {"bytes": b}, 2) for b in (1024, 16 << 20)]
    assert launch.collective_timeout_s(steps, 2, 696.0) == pytest.approx(60.0 + 2 * (16 << 20) / 1e6)
    assert launch.collective_timeout_s(steps, 2, 100.0) == 60.0  # never past half the launch (nor under 60 s)


def _follow(code: str, log: Path, deadline_s: float, quiet_s: float = 0.0) -> tuple[launch._Followed, float]:
    t0 = time.monotonic()
    with log.open("a") as f:
        ended = launch._run_and_follow([sys.executable, "-c", code], {}, f, t0 + deadline_s, None, quiet_s=quiet_s)
    return ended, time.monotonic() - t0


def test_a_launch_whose_worker_broke_is_stopped_after_a_short_grace(monkeypatch, tmp_path):
    monkeypatch.setattr(launch, "AGENT_EXIT_GRACE_S", 0.5)
    ended, took_s = _follow("import time; print('CALIB_LAUNCH_BROKEN {\"rank\": 0, \"error\": \"peer died: x\"}', "
                            "flush=True); time.sleep(60)", tmp_path / "log", deadline_s=60.0)
    assert ended.broke == "peer died: x" and not ended.timed_out
    assert took_s < 10, took_s  # the grace and a SIGTERM, not the launch's 60 s


def test_progress_keeps_a_slow_launch_alive_and_silence_ends_it(tmp_path):
    rounds = "import time\nfor i in range(8):\n    print('CALIB_ROUND {\"round\": %d}' % i, flush=True)\n" \
             "    time.sleep(0.25)\n"
    ended, _ = _follow(rounds, tmp_path / "log", deadline_s=1.0, quiet_s=1.0)  # runs 2 s, past its planned 1 s, reporting rounds
    assert ended.rc == 0 and not ended.timed_out
    ended, took_s = _follow("import time; time.sleep(60)", tmp_path / "log", deadline_s=1.0, quiet_s=1.0)
    assert ended.timed_out and took_s < 20


def test_liveness_ports_refuse_once_closed():
    sock = listen("127.0.0.1")
    port = sock.getsockname()[1]
    with socket.create_connection(("127.0.0.1", port), timeout=2):  # answered by the kernel, never accepted
        pass
    sock.close()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2)


def test_after_a_multi_node_launch_broke_the_launches_left_are_recorded_not_started(tmp_path, monkeypatch):
    """A node that died or cannot be reached would keep every further launch waiting out the rendezvous' join
    timeout (900 s): they are not started, their steps get failed rows naming the cause, for --resume."""
    from test_calibration_runner import _fake_benches

    from calibration import run_plan, runner
    from calibration.run_config import RunConfig

    cfg = _fake_benches(monkeypatch, tmp_path)
    monkeypatch.setattr(run_plan, "world_sizes", lambda *args: [2, 4])  # two launches (tiny plans one per node)
    cfg = RunConfig(**{**cfg.__dict__, "only": frozenset({"all_reduce"}), "nproc": 2, "nnodes": 2, "node_rank": 1,
                       "rdzv_endpoint": "127.0.0.1:29400"})
    launched: list[int] = []

    def broken_launch(steps, *, world_size, **kwargs):
        launched.append(world_size)
        return launch.LaunchResult(1, False, tmp_path / "log", len(steps), "peer died: node 0 (10.0.0.1), rank 0")

    monkeypatch.setattr(launch, "launch", broken_launch)
    assert runner.run(cfg) == 1  # nothing distributed was measured
    assert launched == [2]  # world size 4 was not launched
    rows = read_rows(cfg.out / "rows.jsonl")
    assert rows and {r["world_size"] for r in rows} == {4} and all(r["status"] == "failed" for r in rows)
    assert rows[0]["error"] == ("not launched: an earlier launch of this run broke (peer died: node 0 (10.0.0.1), "
                                "rank 0)")
