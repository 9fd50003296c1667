"""Image datasets read from files with torchvision's dataset classes (MNIST, FashionMNIST,
CIFAR10), decoded once per process, plus on-device augmentation.

Where the files are: a `DataSource`, from the suite key `data_dir` (`--data-dir`), else the
`OHOBENCH_DATA` environment variable, else `./data`. The layout under it is torchvision's:
`MNIST/raw/`, `FashionMNIST/raw/` (the four IDX files, uncompressed or as published, .gz) and
`cifar-10-batches-py/` (the python pickles, md5-checked by torchvision). Nothing is downloaded
unless `download` is set (`--download`).
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from bench.errors import ConfigError

DATA_ENV = "OHOBENCH_DATA"
DEFAULT_DATA_DIR = "./data"


@dataclass(frozen=True)
class DataSource:
    """Where a task's files are, and whether it may download them."""

    root: str
    download: bool = False

    @classmethod
    def resolve(cls, data_dir: str | None = None, download: bool = False) -> DataSource:
        """`data_dir`, else $OHOBENCH_DATA, else ./data, as an absolute path (Ray runs trials
        in their own working directory)."""
        root = data_dir or os.environ.get(DATA_ENV) or DEFAULT_DATA_DIR
        return cls(os.path.abspath(os.path.expanduser(root)), download)


@dataclass(frozen=True)
class ImageSet:
    name: str  # torchvision's class name
    folder: str  # where torchvision looks for the files, under the root
    files: tuple[str, ...]
    mean: tuple[float, ...]  # per channel, of the training images in [0, 1]
    std: tuple[float, ...]
    idx: bool  # IDX files (MNIST-like), else CIFAR pickles

    def directory(self, root: str) -> Path:
        return Path(root) / self.folder


IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")

SETS = {s.name: s for s in (
    ImageSet("MNIST", "MNIST/raw", IDX_FILES, (0.1307,), (0.3081,), idx=True),
    ImageSet("FashionMNIST", "FashionMNIST/raw", IDX_FILES, (0.2860,), (0.3530,), idx=True),
    ImageSet("CIFAR10", "cifar-10-batches-py", CIFAR_FILES, (0.4914, 0.4822, 0.4465),
             (0.2470, 0.2435, 0.2616), idx=False),
)}


def _present(s: ImageSet, root: str) -> tuple[list[str], bool]:
    """The missing files, and whether some IDX files are only there gzipped."""
    d = s.directory(root)
    missing, gz = [], False
    for f in s.files:
        if (d / f).is_file():
            continue
        if s.idx and (d / f"{f}.gz").is_file():
            gz = True
            continue
        missing.append(f)
    return missing, gz


def missing_message(name: str, source: DataSource) -> str | None:
    """One line naming what is missing and how to get it, or None when every file is there."""
    s = SETS[name]
    missing, _ = _present(s, source.root)
    if not missing:
        return None
    d = s.directory(source.root)
    what = ", ".join(f"{f}[.gz]" if s.idx else f for f in missing)
    where = "exists but lacks" if d.is_dir() else "does not exist; expected"
    return (f"{name} data not found: {d} {where} {what}; pass --download (suite key "
            f"download = true) to fetch it, or --data-dir / ${DATA_ENV} for the directory "
            f"that holds {s.folder}/")


# Decoded uint8 images (N, C, H, W) and long labels, per (set, root, verify): Ray reuses its
# worker processes, so a trial after the first reads nothing. Callers must not modify them.
_CACHE: dict[tuple[str, str, bool], tuple[Tensor, Tensor, Tensor, Tensor]] = {}


def load_raw(name: str, source: DataSource, verify: bool = True
             ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(train images, train labels, test images, test labels) of the official splits, images
    uint8 (N, C, H, W). `verify=False` skips torchvision's md5 check of CIFAR-10 files (for
    generated test files only). Raises ConfigError when files are missing and download is off."""
    key = (name, source.root, verify)
    if key not in _CACHE:
        s = SETS[name]
        missing, gz = _present(s, source.root)
        if missing and not source.download:
            raise ConfigError(missing_message(name, source))
        read = _read_idx if s.idx else _read_cifar
        _CACHE[key] = read(s, source.root, bool(missing), gz, verify)
    return _CACHE[key]


def _read_idx(s: ImageSet, root: str, download: bool, gz: bool, verify: bool):
    # torchvision (~2 s on top of torch): only tasks with image files read them
    from torchvision import datasets as tvd

    cls = getattr(tvd, s.name)
    if download:
        sets = [cls(root, train=t, download=True) for t in (True, False)]
        return _idx_tensors(sets)
    if not gz:
        return _idx_tensors([cls(root, train=t) for t in (True, False)])
    # torchvision reads only the uncompressed files: extract the .gz ones into a temporary
    # root with the same layout (the data directory itself may be read-only).
    with tempfile.TemporaryDirectory(prefix="ohobench-") as tmp:
        raw = s.directory(tmp)
        raw.mkdir(parents=True)
        for f in s.files:
            src = s.directory(root) / f
            if src.is_file():
                os.symlink(src, raw / f)
            else:
                with gzip.open(f"{src}.gz", "rb") as fin, open(raw / f, "wb") as fout:
                    shutil.copyfileobj(fin, fout)
        return _idx_tensors([cls(tmp, train=t) for t in (True, False)])


def _idx_tensors(sets) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    (train, test) = sets
    return (train.data.unsqueeze(1).contiguous(), train.targets.long(),
            test.data.unsqueeze(1).contiguous(), test.targets.long())


def _read_cifar(s: ImageSet, root: str, download: bool, gz: bool, verify: bool):
    # torchvision (~2 s on top of torch): only tasks with image files read them
    from torchvision import datasets as tvd

    cls = tvd.CIFAR10 if verify else _unchecked_cifar10()
    try:
        sets = [cls(root, train=t, download=download) for t in (True, False)]
    except RuntimeError as exc:  # torchvision: "not found or corrupted"
        raise ConfigError(f"CIFAR10 files in {s.directory(root)} fail torchvision's md5 check "
                          f"({exc}); replace them, e.g. delete them and pass --download"
                          ) from None

    def images(d) -> Tensor:  # (N, H, W, C) numpy -> (N, C, H, W) tensor
        return torch.from_numpy(d.data).permute(0, 3, 1, 2).contiguous()

    train, test = sets
    return (images(train), torch.as_tensor(train.targets, dtype=torch.long),
            images(test), torch.as_tensor(test.targets, dtype=torch.long))


def _unchecked_cifar10():
    # torchvision (~2 s on top of torch): only tasks with image files read them
    from torchvision.datasets import CIFAR10

    class UncheckedCIFAR10(CIFAR10):
        """torchvision's CIFAR10 reader with the md5 checks replaced by existence checks, so
        that small generated files in the same layout load through the same code."""

        def _check_integrity(self) -> bool:
            d = Path(self.root) / self.base_folder
            return all((d / f).is_file() for f, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            with open(Path(self.root) / self.base_folder / self.meta["filename"], "rb") as fh:
                self.classes = pickle.load(fh, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return UncheckedCIFAR10


def normalize(images: Tensor, s: ImageSet) -> Tensor:
    """uint8 images -> float32, (x / 255 - mean) / std per channel."""
    shape = (1, len(s.mean), 1, 1)
    mean = torch.tensor(s.mean).view(shape)
    std = torch.tensor(s.std).view(shape)
    return images.float().div_(255).sub_(mean).div_(std)


# --- augmentation on the device -------------------------------------------------------------

Augment = Callable[[Tensor, torch.Generator], Tensor]


def crop_flip(pad: int, fill: tuple[float, ...]) -> Augment:
    """Random crop with `pad` pixels of padding (`fill` per channel: black in normalized units)
    and random horizontal flip, per image, as torchvision's RandomCrop(padding) and
    RandomHorizontalFlip; batched, on the batch's device, drawn from `gen`."""
    fills: dict[tuple, Tensor] = {}

    def augment(x: Tensor, gen: torch.Generator) -> Tensor:
        n, c, h, w = x.shape
        key = (x.device, x.dtype)
        if key not in fills:
            fills[key] = torch.tensor(fill, dtype=x.dtype, device=x.device).view(1, c, 1, 1)
        padded = fills[key].expand(n, c, h + 2 * pad, w + 2 * pad).clone()
        padded[:, :, pad:pad + h, pad:pad + w] = x
        off = torch.randint(0, 2 * pad + 1, (2, n), generator=gen, device=x.device)
        flip = torch.rand(n, generator=gen, device=x.device) < 0.5
        cols = torch.arange(w, device=x.device)
        cols = torch.where(flip[:, None], cols.flip(0), cols)  # flip: read columns reversed
        rows = off[0, :, None] + torch.arange(h, device=x.device)  # (n, h)
        cols = off[1, :, None] + cols  # (n, w)
        return padded[torch.arange(n, device=x.device)[:, None, None, None],
                      torch.arange(c, device=x.device)[None, :, None, None],
                      rows[:, None, :, None], cols[:, None, None, :]]

    return augment
