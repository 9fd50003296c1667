"""Ray's private API sits behind one seam (bench/ray_internals.py): this fails when a Ray
upgrade removes a name it patches or reads, and another Ray is refused in one line."""

import pytest

from bench import ray_internals
from bench.errors import ConfigError


def test_every_private_name_ohobench_uses_is_there():
    assert ray_internals.missing() == []


@pytest.mark.parametrize("version", ["2.59.9", "2.61.0", "3.0.0", "dev"])
def test_an_unchecked_ray_is_refused_in_one_line(version):
    with pytest.raises(ConfigError) as refused:
        ray_internals.check_version(version)
    line = str(refused.value)
    assert f"ray {version} is not supported" in line and "ray[tune]>=2.60,<2.61" in line
    assert "\n" not in line


def test_the_checked_ray_is_accepted():
    ray_internals.check_version(ray_internals.RAY_CHECKED)
    ray_internals.check_version("2.60.3")


def test_no_other_module_touches_rays_private_names():
    """The seam is the only place: no other module of bench/ reaches into Ray's internals."""
    from pathlib import Path

    bench = Path(ray_internals.__file__).parent
    private = ("ray.train._internal", "_trial_state", "_perturbation_interval",
               "_next_perturbation_sync", "_get_new_config", "_supports_buffered_results",
               "_ExperimentCheckpointManager", "_delete_fs_path")
    for path in bench.rglob("*.py"):
        if path.name == "ray_internals.py":
            continue
        text = path.read_text()
        assert not [p for p in private if p in text], path
