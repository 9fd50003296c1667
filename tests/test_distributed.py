"""`ohobench run --address` on a real two-node Ray cluster on 127.0.0.1 (a head and one worker
node, started with `ray start` in subprocesses and stopped by this test)."""

import os
import secrets
import signal
import socket
import subprocess
import sys
import time

import pandas as pd
import pytest

RAY = [sys.executable, "-m", "ray.scripts.scripts"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_node(log, env, *args):
    """`ray start --block` keeps the node's processes as its own and stops them on SIGTERM."""
    proc = subprocess.Popen([*RAY, "start", "--block", "--node-ip-address", "127.0.0.1",
                             "--num-cpus", "1", "--disable-usage-stats", *args],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while "Ray runtime started" not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            pytest.fail(f"ray start {' '.join(args)} failed:\n{log.read_text()[-2000:]}")
        time.sleep(0.5)
    return proc


def stop(*procs):
    """Each node in turn: SIGTERM to its `ray start --block`, which drains the node and stops
    its processes in about 2 s (SIGTERM to the whole group killed the GCS first, and the drain
    then waited 30 s for it); whatever is left of the group is killed."""
    for proc in procs:
        if proc is None:
            continue
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """(address, env): a head and a worker node, with token authentication as Ray 2.60 wants
    it for a cluster started by hand: the same RAY_AUTH_TOKEN on every node and the driver."""
    tmp = tmp_path_factory.mktemp("cluster")
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    port = free_port()
    head = start_node(tmp / "head.log", env, "--head", "--port", str(port),
                      "--include-dashboard=false")
    worker = None
    try:
        worker = start_node(tmp / "worker.log", env, "--address", f"127.0.0.1:{port}")
        yield f"127.0.0.1:{port}", env
    finally:
        stop(worker, head)


def ohobench(env, tmp, *flags):
    return subprocess.run([sys.executable, "-m", "bench.cli", "run", "--quiet", "--out",
                           str(tmp / "results"), *flags], env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_suite_runs_on_both_nodes_of_a_cluster(cluster, tmp_path):
    address, env = cluster
    proc = ohobench(env, tmp_path, "--address", address, "--storage", str(tmp_path / "shared"),
                    "--task", "digits", "--method", "random", "--trials", "6",
                    "--repetitions", "1", "--epochs", "2", "--max-concurrent", "2")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next((tmp_path / "results").iterdir())
    df = pd.read_parquet(run_dir / "records.parquet")
    assert sorted(df.groupby("trial")["epoch"].apply(sorted).tolist()) == [[1, 2]] * 6
    assert df["node_id"].nunique() == 2  # trials ran on the head and on the worker node
    assert (tmp_path / "shared" / run_dir.name / "suite").is_dir()  # the suite's one Tuner


def test_a_cluster_of_several_nodes_needs_shared_storage(cluster, tmp_path):
    address, env = cluster
    proc = ohobench(env, tmp_path, "--address", address, "--method", "random", "--trials", "1")
    assert proc.returncode == 2
    assert "has 2 nodes: give --storage" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_address_a_local_instance_starts_even_beside_a_running_cluster(cluster, tmp_path):
    _, env = cluster  # `ray start --head` has made itself this machine's current cluster
    proc = ohobench(env, tmp_path, "--method", "random", "--trials", "1", "--repetitions", "1",
                    "--epochs", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = next((tmp_path / "results").iterdir())
    df = pd.read_parquet(run_dir / "records.parquet")
    assert len(df) == 1 and df["node_id"].nunique() == 1
