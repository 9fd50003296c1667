"""Image tasks read from files: loaders on small generated files in the real formats (IDX,
CIFAR-10 pickles), the real MNIST files where ../shared/data/mnist or $OHOBENCH_DATA has them,
augmentation on the
device, models, mixed precision, and the checks at the boundary. Nothing is downloaded."""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import datasets, harness, suite, tasks
from bench.cli import main
from bench.datasets import DataSource
from bench.errors import ConfigError
from bench.trial import run_trial
from methods import optimizers

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def real_mnist_files() -> Path | None:
    """The folder holding the four real MNIST files (.gz): ../shared/data/mnist, else
    $OHOBENCH_DATA/MNIST/raw; None when neither has them."""
    env = os.environ.get(datasets.DATA_ENV)
    for d in (SHARED_MNIST, env and Path(env).expanduser() / "MNIST" / "raw"):
        if d and all((d / f"{f}.gz").is_file() for f in datasets.IDX_FILES):
            return d
    return None


# --- small files in the published formats ----------------------------------------------------

def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """IDX: magic (0, 0, type 0x08 = ubyte, ndim), big-endian dims, then the bytes."""
    head = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = head + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def images_with_ids(n: int, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Random uint8 images whose first two bytes spell the image's index."""
    x = np.random.default_rng(seed).integers(0, 256, size=(n, *shape), dtype=np.uint8)
    flat = x.reshape(n, -1)
    flat[:, 0], flat[:, 1] = np.arange(n) % 256, np.arange(n) // 256
    return x


def image_ids(x: torch.Tensor, s: datasets.ImageSet) -> list[int]:
    """Undo the normalization of the first two bytes, giving the images' indices."""
    flat = x.reshape(len(x), -1)[:, :2].double()
    raw = ((flat * s.std[0] + s.mean[0]) * 255).round().long()
    return (raw[:, 0] + 256 * raw[:, 1]).tolist()


def make_idx_set(root: Path, folder: str, n_train: int, n_test: int, gz: bool) -> dict:
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    arrays = {"train": (images_with_ids(n_train, (28, 28), 1), np.arange(n_train) % 10),
              "t10k": (images_with_ids(n_test, (28, 28), 2), np.arange(n_test) % 7)}
    for split, (x, y) in arrays.items():
        write_idx(raw / f"{split}-images-idx3-ubyte", x, gz)
        write_idx(raw / f"{split}-labels-idx1-ubyte", y, gz)
    return arrays


def make_cifar(root: Path, per_batch: int, n_test: int) -> dict:
    """The python-pickle layout of cifar-10-batches-py (rows of 3072 bytes, CHW order)."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    x = images_with_ids(5 * per_batch, (3, 32, 32), 3)
    y = np.arange(5 * per_batch) % 10
    x_test = images_with_ids(n_test, (3, 32, 32), 4)
    for i in range(5):
        part = slice(i * per_batch, (i + 1) * per_batch)
        batch = {"data": x[part].reshape(per_batch, -1), "labels": y[part].tolist()}
        (d / f"data_batch_{i + 1}").write_bytes(pickle.dumps(batch))
    (d / "test_batch").write_bytes(pickle.dumps({"data": x_test.reshape(n_test, -1),
                                                 "labels": [1] * n_test}))
    (d / "batches.meta").write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    return {"train": (x, y), "test": (x_test,)}


@pytest.fixture(scope="module")
def mnist_like(tmp_path_factory):
    """MNIST (IDX, gzipped) and FashionMNIST (IDX, plain) of 10,100 training images: enough
    for the tasks' 10k validation images and 100 to train on."""
    root = tmp_path_factory.mktemp("data")
    arrays = {"MNIST": make_idx_set(root, "MNIST", 10_100, 50, gz=True),
              "FashionMNIST": make_idx_set(root, "FashionMNIST", 10_100, 50, gz=False)}
    return root, arrays


@pytest.fixture
def small_idx(tmp_path):
    def make(gz: bool, folder: str = "MNIST"):
        return tmp_path, make_idx_set(tmp_path, folder, 120, 30, gz)
    return make


# --- loaders ---------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("name", ["MNIST", "FashionMNIST"])
def test_idx_splits_shapes_normalization_and_fixed_test_split(small_idx, gz, name):
    root, arrays = small_idx(gz, name)
    s = datasets.SETS[name]
    a = tasks.image_splits(name, 0, DataSource(str(root)), n_val=20)
    assert a.x_train.shape == (100, 1, 28, 28) and a.x_val.shape == (20, 1, 28, 28)
    assert a.x_test.shape == (30, 1, 28, 28) and a.y_train.dtype == torch.long
    assert a.x_train.dtype == torch.float32
    x_test, y_test = arrays["t10k"]
    expected = (torch.as_tensor(x_test).float()[:, None] / 255 - s.mean[0]) / s.std[0]
    assert torch.allclose(a.x_test, expected) and torch.equal(a.y_test, torch.as_tensor(y_test))
    # validation drawn with the seed from the training images, disjoint, labels follow images
    train, val = image_ids(a.x_train, s), image_ids(a.x_val, s)
    assert sorted(train + val) == list(range(120)) and not set(train) & set(val)
    assert a.y_train.tolist() == [i % 10 for i in train]
    b, c = (tasks.image_splits(name, seed, DataSource(str(root)), n_val=20) for seed in (0, 1))
    assert torch.equal(a.x_val, b.x_val) and set(image_ids(c.x_val, s)) != set(val)
    assert torch.equal(a.x_test, c.x_test)  # the official test split, whatever the seed
    flat = tasks.image_splits(name, 0, DataSource(str(root)), n_val=20, flatten=True)
    assert flat.x_train.shape == (100, 784) and torch.equal(flat.x_train, a.x_train.flatten(1))


def test_decoded_files_are_cached_per_process(small_idx):
    root, _ = small_idx(True)
    first = datasets.load_raw("MNIST", DataSource(str(root)))
    assert datasets.load_raw("MNIST", DataSource(str(root))) is first


def test_cifar10_pickles_load_through_torchvision_with_the_md5_check_off(tmp_path):
    arrays = make_cifar(tmp_path, per_batch=12, n_test=8)
    s = datasets.SETS["CIFAR10"]
    a = tasks.image_splits("CIFAR10", 0, DataSource(str(tmp_path)), n_val=10, verify=False)
    assert a.x_train.shape == (50, 3, 32, 32) and a.x_val.shape == (10, 3, 32, 32)
    assert a.x_test.shape == (8, 3, 32, 32) and a.y_test.tolist() == [1] * 8
    mean, std = torch.tensor(s.mean).view(1, 3, 1, 1), torch.tensor(s.std).view(1, 3, 1, 1)
    expected = (torch.as_tensor(arrays["test"][0]).float() / 255 - mean) / std  # CHW kept
    assert torch.allclose(a.x_test, expected, atol=1e-6)
    ids = image_ids(a.x_train, s) + image_ids(a.x_val, s)
    assert sorted(ids) == list(range(60))
    assert a.y_train.tolist() == [i % 10 for i in image_ids(a.x_train, s)]
    # torchvision's own check refuses files that are not the official ones, in one line
    with pytest.raises(ConfigError, match="fail torchvision's md5 check"):
        datasets.load_raw("CIFAR10", DataSource(str(tmp_path)))


def test_too_few_training_images_for_the_validation_split(small_idx):
    root, _ = small_idx(True)
    with pytest.raises(ConfigError, match="10000 validation images requested of 120"):
        tasks.get("mnist-mlp").load_splits(0, DataSource(str(root)))


@pytest.mark.skipif(real_mnist_files() is None,
                    reason="no MNIST files in ../shared/data/mnist or $OHOBENCH_DATA/MNIST/raw")
def test_real_mnist(tmp_path):
    files = real_mnist_files()
    raw = tmp_path / "MNIST" / "raw"  # torchvision's layout, pointing at the real files
    raw.mkdir(parents=True)
    for f in files.glob("*.gz"):
        (raw / f.name).symlink_to(f.resolve())
    a = tasks.get("mnist-mlp").load_splits(0, DataSource(str(tmp_path)))
    assert a.x_train.shape == (50_000, 784) and len(a.x_val) == 10_000
    assert a.x_test.shape == (10_000, 784)
    assert abs(float(a.x_train.mean())) < 0.01 and abs(float(a.x_train.std()) - 1) < 0.01
    with gzip.open(files / "t10k-labels-idx1-ubyte.gz") as fh:
        labels = np.frombuffer(fh.read()[8:], dtype=np.uint8)
    assert a.y_test.tolist() == labels.tolist()  # the official test set, in order
    assert sorted(torch.bincount(a.y_train).tolist())[0] > 4000  # every class present
    b = tasks.get("mnist-cnn").load_splits(1, DataSource(str(tmp_path)))
    assert b.x_train.shape == (50_000, 1, 28, 28) and torch.equal(b.x_test.flatten(1), a.x_test)


# --- missing files: one line, at the boundary and at trial load time -------------------------

def test_missing_files_name_the_directory_files_and_download_flag(tmp_path):
    with pytest.raises(ConfigError) as err:
        tasks.get("mnist-mlp").load_splits(0, DataSource(str(tmp_path)))
    msg = str(err.value)
    assert msg.startswith("mnist-mlp: MNIST data not found: ") and "\n" not in msg
    assert str(tmp_path / "MNIST" / "raw") in msg and "train-images-idx3-ubyte[.gz]" in msg
    assert "--download" in msg and "--data-dir" in msg
    with pytest.raises(ConfigError, match="test_batch, batches.meta; pass --download"):
        tasks.get("cifar10-resnet18").load_splits(0, DataSource(str(tmp_path)))
    (tmp_path / "FashionMNIST" / "raw").mkdir(parents=True)
    (tmp_path / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"")
    with pytest.raises(ConfigError, match="raw exists but lacks train-labels-idx1-ubyte"):
        tasks.get("fashion-mnist-mlp").load_splits(0, DataSource(str(tmp_path)))


def test_suite_validation_finds_missing_files_before_ray_starts(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as err:
        suite.build({"tasks": ["mnist-mlp", "cifar10-resnet18", "digits"], "trials": 0,
                     "data_dir": str(tmp_path)})
    assert all(p in str(err.value) for p in ("trials", "mnist-mlp: MNIST data not found",
                                             "cifar10-resnet18: CIFAR10 data not found"))
    assert suite.build({"tasks": ["mnist-mlp"], "data_dir": str(tmp_path),
                        "download": True}).download  # with download: fetched, not refused
    monkeypatch.setenv(datasets.DATA_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(ConfigError, match="elsewhere/MNIST/raw does not exist"):
        suite.build({"tasks": ["mnist-mlp"]})
    assert suite.Suite(data_dir="rel").trial_keys()["data_dir"] == str(Path("rel").resolve())


def test_cli_refuses_missing_files_in_one_line(capsys, tmp_path):
    code = main(["run", "--task", "mnist-mlp", "--data-dir", str(tmp_path / "none"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "MNIST data not found" in err
    assert "--download" in err and not (tmp_path / "out").exists()


def test_suite_bool_keys_and_gpu_fractions():
    with pytest.raises(ConfigError, match="download: expected bool, got 'yes'"):
        suite.build({"download": "yes"})
    with pytest.raises(ConfigError, match="gpus_per_trial: a fraction must be below 1"):
        suite.build({"gpus_per_trial": 1.5})
    assert suite.build({"gpus_per_trial": 0.25}).gpus_per_trial == 0.25
    assert suite.build({"gpus_per_trial": 2}).gpus_per_trial == 2.0


# --- training on the files -------------------------------------------------------------------

def test_trial_trains_mnist_mlp_from_the_data_directory(mnist_like):
    root, _ = mnist_like
    config = {"task": "mnist-mlp", "method": "random", "hparams": {"lr": 0.1, "wd": 0.0},
              "seed": 0, "epochs": 2, "device": "cpu", "data_dir": str(root)}
    records = run_trial(config)
    assert [r["epoch"] for r in records] == [1, 2] and records[-1]["step"] == 2  # 100 / 100
    assert all(np.isfinite(r["test_loss"]) for r in records)
    fashion = run_trial({**config, "task": "fashion-mnist-mlp", "epochs": 1})
    assert fashion[0]["test_loss"] != records[0]["test_loss"]
    with pytest.raises(ConfigError, match="MNIST data not found"):
        run_trial({**config, "data_dir": str(root / "nothing")})


@pytest.mark.parametrize("name, shape", [("mnist-mlp", (784,)), ("fashion-mnist-mlp", (784,)),
                                         ("mnist-cnn", (1, 28, 28)),
                                         ("cifar10-resnet18", (3, 32, 32))])
def test_model_outputs(name, shape):
    task = tasks.get(name)
    model = harness.make_model(task, 0, torch.device("cpu"), torch.float32)
    assert model(torch.randn(3, *shape)).shape == (3, 10)


def test_resnet18_is_adapted_to_32x32():
    model = tasks.resnet18_cifar()
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert isinstance(model.maxpool, torch.nn.Identity)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


def test_cnn_has_four_conv_layers_of_128_kernels():
    convs = [m for m in tasks.cnn4().modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and all(c.out_channels == 128 for c in convs)


# --- augmentation ----------------------------------------------------------------------------

def crops_of(image: torch.Tensor, pad: int, fill: torch.Tensor) -> list[torch.Tensor]:
    c, h, w = image.shape
    padded = fill.view(c, 1, 1).expand(c, h + 2 * pad, w + 2 * pad).clone()
    padded[:, pad:pad + h, pad:pad + w] = image
    return [crop for i in range(2 * pad + 1) for j in range(2 * pad + 1)
            for crop in (padded[:, i:i + h, j:j + w], padded[:, i:i + h, j:j + w].flip(-1))]


def test_crop_flip_is_a_seeded_random_crop_and_flip():
    task = tasks.get("cifar10-resnet18")
    x = torch.randn(64, 3, 32, 32)
    out = task.augment(x, torch.Generator().manual_seed(5))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, task.augment(x, torch.Generator().manual_seed(5)))
    assert not torch.equal(out, task.augment(x, torch.Generator().manual_seed(6)))
    changed = [not torch.equal(o, i) for o, i in zip(out, x, strict=True)]
    assert sum(changed) > 48  # 1 in 162 (crop, flip) choices is the identity
    s = datasets.SETS["CIFAR10"]
    fill = torch.tensor([-m / sd for m, sd in zip(s.mean, s.std, strict=True)])  # black
    for o, i in zip(out[:16], x[:16], strict=True):
        assert any(torch.equal(o, crop) for crop in crops_of(i, 4, fill))
    assert not torch.equal(task.augment(x, torch.Generator().manual_seed(5)), x)


def test_harness_augments_training_batches_only():
    seen = []

    def augment(x, gen):
        seen.append(len(x))
        return x + torch.randn(x.shape, generator=gen)

    base = tasks.get("digits")
    task = tasks.Task(**{**base.__dict__, "augment": augment})
    splits = base.load(0)
    spec = harness.TrainSpec(epochs=2, batch_size=200, seed=1)
    rule = optimizers.FamilyRule(optimizers.get("fixed"), 2)
    a = harness.train(task, rule, {"lr": 0.1, "wd": 0.0}, splits, spec)
    steps = 2 * -(-len(splits.x_train) // 200)
    assert len(seen) == steps and sum(seen) == 2 * len(splits.x_train)  # not val, not test
    b = harness.train(task, rule, {"lr": 0.1, "wd": 0.0}, splits, spec)
    assert a[-1]["val_loss"] == b[-1]["val_loss"]  # seeded from the trial seed
    plain = harness.train(base, rule, {"lr": 0.1, "wd": 0.0}, splits, spec)
    assert plain[-1]["val_loss"] != a[-1]["val_loss"]


# --- mixed precision -------------------------------------------------------------------------

def test_amp_trains_black_box_trials_under_bf16_autocast():
    """The harness' autocast path, here on the CPU (suites allow --amp on CUDA only)."""
    seen = []
    base = tasks.get("digits")

    def loss(out, y):
        seen.append(out.dtype)
        return base.loss(out, y)

    task = tasks.Task(**{**base.__dict__, "loss": loss, "amp": True})
    spec = harness.TrainSpec(epochs=2, batch_size=64, seed=1, amp=True)
    records = harness.train(task, optimizers.FamilyRule(optimizers.get("fixed"), 2),
                            {"lr": 0.1, "wd": 0.0}, base.load(0), spec)
    assert torch.bfloat16 in seen and torch.float32 in seen  # training bf16, evaluation not
    assert records[-1]["train_loss"] < records[0]["train_loss"] < 2.3


def test_amp_is_refused_for_online_methods_tasks_without_it_and_cpus(tmp_path, mnist_like,
                                                                     monkeypatch):
    root, _ = mnist_like
    with pytest.raises(ConfigError) as err:
        suite.build({"amp": True, "tasks": ["digits"], "methods": ["random", "oho"],
                     "device": "cpu"})
    msg = str(err.value)
    assert "amp: mixed precision is for black-box methods only" in msg and "or oho" in msg
    assert "amp: not enabled for task digits; tasks with amp: cifar10-resnet18, mnist-cnn" in msg
    assert "amp: bf16 autocast is for CUDA devices" in msg and "run on cpu" in msg
    with pytest.raises(ConfigError, match="amp: bf16 autocast is for CUDA devices"):
        run_trial({"task": "mnist-cnn", "method": "random", "hparams": {"lr": 0.1}, "seed": 0,
                   "epochs": 1, "amp": True, "data_dir": str(root), "device": "cpu"})
    with pytest.raises(ConfigError, match="black-box methods only"):
        run_trial({"task": "mnist-cnn", "method": "hd", "hparams": {"lr": 0.1}, "seed": 0,
                   "epochs": 1, "amp": True, "data_dir": str(root)})
    code = main(["run", "--amp", "--device", "cpu", "--task", "mnist-cnn", "--method", "random",
                 "--data-dir", str(root), "--out", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a GPU machine
    ok = suite.build({"amp": True, "tasks": ["mnist-cnn"], "methods": ["random"],
                      "data_dir": str(root)})
    assert ok.trial_keys()["amp"] is True
    code = main(["run", "--amp", "--task", "digits", "--method", "random",
                 "--out", str(tmp_path / "out")])
    assert code == 2 and not (tmp_path / "out").exists()


# --- the GPU path ----------------------------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_mnist_mlp_trains_on_cuda(mnist_like, monkeypatch):
    root, _ = mnist_like
    devices = set()
    step = optimizers.FamilyRule.step

    def spy(self, state, params, batch, ctx):
        devices.update({batch[0].device.type, batch[1].device.type,
                        *(p.device.type for p in params.values())})
        return step(self, state, params, batch, ctx)

    monkeypatch.setattr(optimizers.FamilyRule, "step", spy)
    records = run_trial({"task": "mnist-mlp", "method": "random", "seed": 0, "epochs": 1,
                         "hparams": {"lr": 0.1, "wd": 0.0}, "device": "cuda",
                         "data_dir": str(root)})
    assert devices == {"cuda"} and records[0]["device"].startswith("cuda")
    assert np.isfinite(records[0]["test_loss"]) and records[0]["train_seconds"] > 0
    x = torch.randn(8, 3, 32, 32, device="cuda")
    gen = torch.Generator("cuda").manual_seed(0)
    assert tasks.get("cifar10-resnet18").augment(x, gen).device.type == "cuda"


def test_module_fast_path_trains_exactly_as_functional_call(monkeypatch):
    """harness.train runs the module directly while the rule keeps the bound parameters
    (torch.optim); the records are those of the functional_call path, bit for bit."""
    task = tasks.get("digits")
    splits, spec = task.load(0), harness.TrainSpec(epochs=2, batch_size=64, seed=1)

    def run():
        rule = optimizers.FamilyRule(optimizers.get("fixed"), 2)
        records = harness.train(task, rule, {"lr": 0.1, "wd": 1e-3}, splits, spec)
        return [{k: v for k, v in r.items() if "seconds" not in k and k != "timestamp"}
                for r in records]

    fast = run()
    monkeypatch.setattr(harness.Trainee, "bound_params", harness.Trainee.initial_params)
    assert run() == fast


def test_a_failed_download_is_one_line(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried mirror")

    monkeypatch.setattr(datasets, "_read_idx", offline)  # never touch the network in tests
    with pytest.raises(ConfigError, match="mnist-mlp: downloading its data into .* failed: "
                                          "Error downloading train-images-idx3-ubyte.gz:$"):
        tasks.fetch(["digits", "mnist-mlp"], DataSource(str(tmp_path), download=True),
                    progress=lambda _: None)
