"""Train an M2 classifier from a folder per class (``napari-cellseg pretrain``).

The folder holds one subfolder per class, named after it, with the class's
images (PNG, JPEG, TIFF; grey or RGB, 8- or 16-bit), like torchvision's
``ImageFolder``; classes are the subfolder names in sorted order. Nothing is
unpickled: images are read with :func:`napari_cellseg.io.read_image`.

Each image goes through the project's normalisation rule
(:mod:`napari_cellseg.data.normalize`, with the new M2's mean/std), a random
square crop of 50-100 % of its short side (training; the centre square for
validation), a resize to ``input_size``, and random flips / 90 degree
rotations. The result is saved with :func:`napari_cellseg.models.m2.save_m2`
and is used by ``train --m2 OUT``. A cancelled run saves nothing: an M2 of
fewer epochs than asked would look like a finished one to ``train --m2``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ConfigError, JsonConfig
from ..generators import run_to_end
from ..io import IMAGE_SUFFIXES
from ..models.device import device_problems
from .config import MAX_SEED
from .reports import PretrainEpochReport, PretrainResult


@dataclass
class PretrainConfig(JsonConfig):
    """Settings of ``napari-cellseg pretrain`` (see the module docstring)."""

    data_dir: str = ""
    out_dir: str = ""
    arch: str = ""
    num_classes: int | None = None
    init: str | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    input_size: int = 224
    val_fraction: float = 0.1
    seed: int = 0
    num_threads: int = 0
    device: str = "auto"
    name: str = ""

    def validate(self) -> PretrainConfig:
        problems = []
        for key in ("data_dir", "out_dir", "arch"):
            if not getattr(self, key):
                problems.append(f"{key} is required")
        if self.epochs < 1:
            problems.append(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:  # BatchNorm trains on batch statistics: one image has none at a 1x1 map
            problems.append(
                f"batch_size must be >= 2 (the network's BatchNorm layers need more than one "
                f"image per step), got {self.batch_size}"
            )
        # numpy's generators take no negative seed, torch none past 64 bits (as TrainConfig)
        if not 0 <= self.seed <= MAX_SEED:
            problems.append(f"seed must be a whole number from 0 to 2**64 - 1, got {self.seed}")
        if self.input_size < 16:
            problems.append(f"input_size must be >= 16, got {self.input_size}")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if not self.lr > 0:
            problems.append(f"lr must be > 0, got {self.lr}")
        problems += device_problems(self.device)
        if self.num_classes is not None and self.num_classes < 2:
            problems.append(f"num_classes must be >= 2, got {self.num_classes}")
        if problems:
            raise ConfigError("invalid pretraining settings:\n  - " + "\n  - ".join(problems))
        return self


def scan_image_folder(
    root: str | Path, num_classes: int | None = None
) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names and ``(path, class index)`` samples of a folder-per-class dataset.

    Raises
    ------
    ConfigError
        If the folder is missing, has fewer than two class folders, a class
        folder holds no image, an image cannot be read, or the number of
        classes differs from ``num_classes``.
    """
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root}: no such folder (expected one subfolder of images per class)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    samples, empty = [], []
    for index, folder in enumerate(folders):
        files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file())
        if not files:
            empty.append(folder.name)
        samples += [(f, index) for f in files]
    if not folders:
        raise ConfigError(f"{root}: no class subfolders (expected {root}/<class name>/<images>)")
    if empty:
        raise ConfigError(f"{root}: class folder(s) without images ({', '.join(IMAGE_SUFFIXES)}): {empty}")
    if num_classes is not None and num_classes != len(folders):
        raise ConfigError(
            f"{root}: --classes {num_classes} but the folder has {len(folders)} class subfolders: "
            f"{[f.name for f in folders]}"
        )
    if len(folders) < 2:  # a one-class classifier learns nothing and its features are useless as an M2
        raise ConfigError(
            f"{root}: only one class folder ({folders[0].name!r}); a classifier needs at least 2, "
            f"one subfolder of images per class"
        )
    unreadable = [problem for path, _ in samples if (problem := _image_problem(path))]
    if unreadable:
        shown = "\n  ".join(unreadable[:10])
        more = f"\n  and {len(unreadable) - 10} more" if len(unreadable) > 10 else ""
        raise ConfigError(f"{root}: {len(unreadable)} image(s) cannot be read:\n  {shown}{more}")
    return [f.name for f in folders], samples


def _image_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable image, from its header (fast: no pixels are decoded)."""
    from ..data.headers import HeaderError, read_header

    try:
        if path.stat().st_size == 0:
            return f"{path}: empty file (0 bytes)"
        read_header(path)
    except (HeaderError, OSError, ValueError) as err:
        return f"{path}: {err}"
    return None


def split_samples(samples: list[tuple[Path, int]], fraction: float, seed: int) -> tuple[list, list]:
    """Hold out ``fraction`` of each class (at least one image when it has two or more)."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in sorted({c for _, c in samples}):
        members = [s for s in samples if s[1] == label]
        order = rng.permutation(len(members))
        n_val = min(len(members) - 1, math.ceil(fraction * len(members))) if fraction > 0 else 0
        val += [members[i] for i in order[:n_val]]
        train += [members[i] for i in order[n_val:]]
    return train, val


def prepare_image(path: Path, size: int, normalization: Any, rng: np.random.Generator | None) -> np.ndarray:
    """Read, scale, crop (random with ``rng``, else centre), resize and standardise one image."""
    import cv2

    from ..data.normalize import scale_intensity, standardize
    from ..io import collapse_grey_rgb, read_image

    try:
        pixels = read_image(path)
    except (OSError, ValueError) as err:  # a file whose header was fine but whose pixels are damaged
        raise ConfigError(f"{path}: cannot be read ({err})") from None
    image = scale_intensity(collapse_grey_rgb(pixels), normalization)
    height, width = image.shape[:2]
    side = min(height, width)
    if rng is not None:
        side = max(1, round(side * rng.uniform(0.5, 1.0)))
        top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    else:
        top, left = (height - side) // 2, (width - side) // 2
    crop = cv2.resize(image[top : top + side, left : left + side], (size, size), interpolation=cv2.INTER_AREA)
    if rng is not None:
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crop = np.rot90(crop, int(rng.integers(0, 4)))
    return standardize(np.ascontiguousarray(crop), normalization)


def _build(config: PretrainConfig, n_classes: int) -> tuple[Any, tuple, tuple]:
    from ..models.m2 import build_classifier, load_m2

    if config.init:
        model, m2 = load_m2(config.init)
        if m2.arch != config.arch:
            raise ConfigError(f"--init {config.init} is architecture {m2.arch!r}, not --arch {config.arch!r}")
        if m2.num_classes != n_classes:
            model.reset_classifier(n_classes)
        return model, tuple(m2.mean), tuple(m2.std)
    model = build_classifier(config.arch, n_classes)
    cfg = getattr(model, "pretrained_cfg", None) or {}
    return model, tuple(cfg.get("mean", (0.5, 0.5, 0.5))), tuple(cfg.get("std", (0.5, 0.5, 0.5)))


def _batches(samples: list, batch: int, size: int, norm: Any, seed: int | None, epoch: int):
    """Batches of prepared images; ``seed`` None: in order, centre crops (validation)."""
    import torch

    order = list(range(len(samples)))
    if seed is not None:  # a pure function of (seed, epoch): reproducible
        order = list(np.random.default_rng([seed, epoch]).permutation(len(samples)))
    chunks = [order[start : start + batch] for start in range(0, len(order), batch)]
    if seed is not None and len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2:] = [chunks[-2] + chunks[-1]]  # BatchNorm cannot train on one image
    for chosen in chunks:
        images = []
        for i in chosen:
            rng = np.random.default_rng([seed, epoch, i]) if seed is not None else None
            images.append(prepare_image(samples[i][0], size, norm, rng))
        yield torch.from_numpy(np.stack(images)), torch.tensor([samples[i][1] for i in chosen])


def iter_pretrain(
    config: PretrainConfig, cancel: Callable[[], bool] | None = None
) -> Generator[PretrainEpochReport, None, PretrainResult]:
    """Train and save an M2 classifier; yield a report per epoch; return the result.

    When ``cancel()`` turns true the run stops before its next step and saves
    nothing (the result's ``cancelled`` is True, ``out_dir`` is left as it was).
    """
    import torch

    from ..data.normalize import NormalizationConfig
    from ..models.checkpoint import resolve_device
    from ..models.m2 import M2Config, save_m2

    config.validate()
    started = time.perf_counter()
    out = Path(config.out_dir)
    if out.is_file() or (out.is_dir() and any(out.iterdir())):  # as import-m2: never replace an M2
        raise ConfigError(f"{out}: already exists; choose a new M2 directory")
    classes, samples = scan_image_folder(config.data_dir, config.num_classes)
    train_set, val_set = split_samples(samples, config.val_fraction, config.seed)
    torch.set_num_threads(config.num_threads or max(1, (os.cpu_count() or 2) - 1))
    torch.manual_seed(config.seed)
    try:
        device, _ = resolve_device(config.device)
    except ValueError as err:  # e.g. --device cuda without a GPU
        raise ConfigError(str(err)) from None
    model, mean, std = _build(config, len(classes))
    model = model.to(device)
    norm = NormalizationConfig(mean=mean, std=std)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.epochs * math.ceil(len(train_set) / config.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps))
    )
    train_acc, val_acc, cancelled, epoch = 0.0, None, False, 0
    for epoch in range(1, config.epochs + 1):
        epoch_start, losses, correct = time.perf_counter(), [], 0
        model.train()
        for images, labels in _batches(
            train_set, config.batch_size, config.input_size, norm, config.seed, epoch
        ):
            if cancel is not None and cancel():
                cancelled = True
                break
            images, labels = images.to(device), labels.to(device)
            logits = model(images)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(float(loss.detach()))
            correct += int((logits.argmax(1) == labels).sum())
        if cancelled:
            epoch -= 1
            break
        train_acc = correct / max(1, len(train_set))
        val_acc = _accuracy(model, val_set, config, norm, device) if val_set else None
        seconds = time.perf_counter() - epoch_start
        yield PretrainEpochReport(
            epoch=epoch, epochs=config.epochs, train_loss=float(np.mean(losses)) if losses else 0.0,
            train_accuracy=train_acc, val_accuracy=val_acc, lr=float(optimizer.param_groups[0]["lr"]),
            samples_per_s=len(train_set) / seconds if seconds > 0 else 0.0,
            elapsed_s=time.perf_counter() - started, eta_s=seconds * (config.epochs - epoch),
        )  # fmt: skip
    if cancelled:  # an M2 with fewer epochs than asked would pass for a finished one in train --m2
        return _result(config, classes, epoch, True, val_acc, train_acc, started)
    m2 = M2Config(
        arch=config.arch, num_classes=len(classes), name=config.name or Path(config.out_dir).name,
        class_names=classes, mean=mean, std=std, input_size=config.input_size,
        source=f"napari-cellseg pretrain on {config.data_dir}" + (f" from {config.init}" if config.init else ""),
        licence="trained by its user on their own data" + (f"; initialised from {config.init}" if config.init else ""),
    )  # fmt: skip
    save_m2(config.out_dir, model.cpu().eval(), m2)
    return _result(config, classes, epoch, False, val_acc, train_acc, started)


def _result(config, classes, epoch, cancelled, val_acc, train_acc, started) -> PretrainResult:
    return PretrainResult(
        out_dir=str(config.out_dir), arch=config.arch, class_names=classes, epochs_done=epoch,
        cancelled=cancelled, val_accuracy=val_acc, train_accuracy=train_acc,
        elapsed_s=time.perf_counter() - started,
    )  # fmt: skip


def _accuracy(model: Any, samples: list, config: PretrainConfig, norm: Any, device: Any) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.inference_mode():
        for images, labels in _batches(samples, config.batch_size, config.input_size, norm, None, 0):
            correct += int((model(images.to(device)).argmax(1).cpu() == labels).sum())
    model.train()
    return correct / len(samples)


def run_pretraining(
    config: PretrainConfig,
    cancel: Callable[[], bool] | None = None,
    callback: Callable[[PretrainEpochReport], None] | None = None,
) -> PretrainResult:
    """Run :func:`iter_pretrain` to the end; return its result."""
    generator = iter_pretrain(config, cancel)
    return run_to_end(generator, callback)
