"""Probes of the world outside the suite, made before anything starts: the Ray cluster at
`--address`, the directories a run writes (`--out`, `--storage`), and the cluster's resources
and nodes once Ray is up. Each refuses in one line (ConfigError)."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import ray

from bench.errors import ConfigError, raise_if
from bench.suite import Suite

RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")  # where `--address auto` looks


def check_address(address: str | None, timeout: float = 3.0) -> None:
    """Fail fast, before starting anything, if no Ray cluster answers at `address`."""
    if not address:
        return
    if address == "auto":
        if os.environ.get("RAY_ADDRESS"):
            return check_address(os.environ["RAY_ADDRESS"], timeout)
        try:  # what Ray resolves "auto" to; the file outlives a cluster that was killed
            current = RAY_CURRENT_CLUSTER.read_text().strip()
        except OSError:
            current = ""
        if not current:
            raise ConfigError("--address auto: no running Ray cluster found on this machine "
                              "(start one with `ray start --head`)")
        try:
            return check_address(current, timeout)
        except ConfigError:
            raise ConfigError(f"--address auto: the cluster at {current} (named in "
                              f"{RAY_CURRENT_CLUSTER}) does not answer (checked for "
                              f"{timeout:.0f} s); start one with `ray start --head`") from None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address!r}: expected HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        raise ConfigError(f"--address {address!r}: no Ray cluster answers there "
                          f"(checked for {timeout:.0f} s); start one with `ray start --head`"
                          ) from None


URI_SCHEMES = ("s3", "gs", "gcs", "hdfs", "viewfs", "abfs", "abfss", "file")  # pyarrow's


def check_paths(s: Suite, new_run: bool) -> None:
    """Fail before starting anything if the run directory (under `out`, for a new run) or
    Ray Tune's `storage` cannot be written."""
    problems = [directory_problem("--out", s.out)] if new_run else []
    if s.storage is not None:
        scheme, sep, rest = s.storage.partition("://")
        if sep and scheme not in URI_SCHEMES:
            problems.append(f"--storage {s.storage!r}: unknown scheme {scheme + '://'!r}; "
                            f"give a path or a URI of {', '.join(URI_SCHEMES)}")
        elif not sep or scheme == "file":
            problems.append(directory_problem("--storage", rest if sep else s.storage))
    raise_if([p for p in problems if p])


def directory_problem(flag: str, path: str) -> str | None:
    """Why directories cannot be made in `path` (made if missing), or None."""
    if not path:
        return f"{flag}: give a directory"
    target = Path(path).expanduser().absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        return f"{flag} {path!r}: {str(existing)!r} is a file, not a directory"
    try:  # a probe, removed at once: access() says yes to root on a read-only directory
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".ohobench-probe-"))
    except OSError as exc:
        return (f"{flag} {path!r}: cannot write in {str(existing)!r} ({exc.strerror}); give "
                "a directory you can write")
    return None


def check_resources(suite: Suite) -> None:
    """Refuse, before any trial starts, per-trial resources that no node of the cluster has
    (Ray would wait for them forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(n.get("CPU", 0) >= suite.cpus_per_trial and n.get("GPU", 0) >= suite.gpus_per_trial
           for n in nodes):
        return
    largest = max(nodes, key=lambda n: (n.get("GPU", 0), n.get("CPU", 0)), default={})
    raise ConfigError(
        f"--cpus-per-trial {suite.cpus_per_trial:g} --gpus-per-trial {suite.gpus_per_trial:g}: "
        f"no node of this Ray cluster has that much; its {len(nodes)} node(s) have at most "
        f"{largest.get('CPU', 0):g} CPUs and {largest.get('GPU', 0):g} GPUs "
        f"(cluster total: {ray.cluster_resources().get('CPU', 0):g} CPUs, "
        f"{ray.cluster_resources().get('GPU', 0):g} GPUs)")


def check_storage(suite: Suite) -> None:
    """A cluster of several nodes needs storage that all of them reach."""
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) > 1 and suite.storage is None:
        raise ConfigError(f"this Ray cluster has {len(nodes)} nodes: give --storage, a path "
                          "every node can reach (e.g. on NFS) or a URI such as "
                          "s3://bucket/ohobench, for Ray Tune's snapshots and trial files")
