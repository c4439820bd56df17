"""Everything a training run is made of, built from a :class:`TrainConfig`.

:func:`build_run` opens the dataset and split, builds the network from M2, the
loss, optimizer, learning-rate schedule and AMP scaler, and the crop stream.
The engine (:mod:`.engine`) only runs the loop. torch is imported inside.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..models.defaults import MAX_EXTRA_BLOCKS
from .config import FP16_ADVICE, TrainConfig, default_new_layers_problem
from .data import CropDataset, image_weights, select_ids
from .distributed import DistributedContext

# Crops up to this side are allowed whatever the images' size (the TrainConfig default).
PATCH_SIZE_FLOOR = TrainConfig.__dataclass_fields__["patch_size"].default


class TrainingError(ValueError):
    """A training run cannot start as configured (the message says why)."""


@dataclass
class Run:
    """The live objects of a training run (see :func:`build_run`)."""

    config: TrainConfig
    context: DistributedContext
    device: Any
    device_reason: str
    amp_dtype: Any
    channels_last: bool
    dataset: Any
    train_ids: list[str]
    dev_ids: list[str]
    split_hash: str | None
    model: Any  # the plain CellSegNet
    net: Any  # the module that trains (DDP wrapper when distributed)
    loss_fn: Any
    optimizer: Any
    scheduler: Any
    scaler: Any
    normalization: Any
    crops: CropDataset
    object_diameter: float | None
    size_factors: dict[str, float] = field(default_factory=dict)
    train_counts: dict[str, int] = field(default_factory=dict)
    watershed: dict = field(default_factory=dict)  # a starting model's tuned settings, else the defaults

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.config.steps_per_epoch

    @property
    def global_batch_size(self) -> int:
        return self.config.batch_size * self.context.world_size


def pick_device(config: TrainConfig, context: DistributedContext) -> tuple[Any, str]:
    """CUDA, then MPS, then the CPU (or the one asked for), with the reason in words."""
    import torch

    from ..models.checkpoint import resolve_device

    if context.enabled and ":" in config.device:  # cuda:N (the names check_device_name lets through)
        raise TrainingError(
            f"device {config.device!r} names one GPU, but under torchrun each process trains on the "
            f"GPU of its LOCAL_RANK (this one: {context.local_rank}); use --device cuda or auto, and "
            "CUDA_VISIBLE_DEVICES to choose the GPUs"
        )
    try:
        device, reason = resolve_device(config.device)
    except ValueError as err:  # e.g. device 'cuda' asked for on a machine without a GPU
        raise TrainingError(str(err)) from None
    device = torch.device(device)
    if device.type == "cuda" and context.enabled:
        device = torch.device("cuda", context.local_rank % max(1, torch.cuda.device_count()))
        torch.cuda.set_device(device)
        reason += f"; rank {context.rank} uses GPU {device.index} (LOCAL_RANK={context.local_rank})"
    return device, reason


def pick_amp(mode: str, device: Any) -> Any:
    """The autocast dtype, or None for full float32.

    fp16 needs a gradient scaler against underflowing gradients; the run makes
    one on CUDA only, so fp16 elsewhere is refused (bf16 needs none).
    """
    import torch

    from ..models.device import cuda_bf16_supported

    if mode == "off" or (mode == "auto" and device.type != "cuda"):
        return None
    if mode == "fp16":
        if device.type != "cuda":
            raise TrainingError(
                f"amp 'fp16' (--amp fp16) trains on CUDA only (with a gradient scaler), and this run is on "
                f"the {device.type.upper()}: {FP16_ADVICE}"
            )
        return torch.float16
    if mode == "bf16" or cuda_bf16_supported(device):  # that GPU's, not the current one's
        return torch.bfloat16
    return torch.float16


def lr_factor(step: int, total: int, scheduler: str, warmup: int) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based) of ``total``."""
    if scheduler == "constant":
        return 1.0
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


# The one-cycle schedule warms up over at least this share of the steps.
ONE_CYCLE_MIN_WARMUP = 0.05


def one_cycle_warmup(total: int, warmup_fraction: float) -> int:
    """Warm-up steps of a one-cycle schedule of ``total`` steps (0 when ``total`` < 3).

    ``max(warmup_fraction, 5 %)`` of the steps, at least 2 (OneCycleLR divides
    by the warm-up steps minus one: one step raised ZeroDivisionError, fewer lost
    the warm-up) and at most ``total - 1``, which leaves a step to anneal.
    """
    if total < 3:
        return 0
    wanted = round(max(warmup_fraction, ONE_CYCLE_MIN_WARMUP) * total)
    return min(max(wanted, 2), total - 1)


def make_scheduler(config: TrainConfig, optimizer: Any) -> Any:
    """One-cycle (torch's OneCycleLR) or cosine-with-warm-up / constant (LambdaLR)."""
    import torch

    total = config.epochs * config.steps_per_epoch
    if config.scheduler == "one-cycle":
        # A whole number of warm-up steps: OneCycleLR's phases end at pct_start * total - 1.
        # Under 3 steps there is no room for one; the cycle only anneals.
        pct_start = one_cycle_warmup(total, config.warmup_fraction) / total
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total, pct_start=pct_start
        )
    warmup = round(config.warmup_fraction * total)

    def factor(step: int) -> float:
        return lr_factor(step, total, config.scheduler, warmup)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def estimate_object_diameter(dataset: Any, ids: list[str], max_images: int = 64) -> float | None:
    """Median equivalent diameter (pixels) of the training nuclei: the model's object scale."""
    from ..inference.scale import equivalent_diameters

    if not ids:
        return None
    chosen = [ids[k] for k in np.linspace(0, len(ids) - 1, min(max_images, len(ids))).astype(int)]
    # Target maps count too: their cells are the interiors grown into their boundaries.
    diameters = [equivalent_diameters(dataset.load_reference_instances(i)) for i in dict.fromkeys(chosen)]
    pooled = np.concatenate(diameters) if diameters else np.empty(0)
    return float(np.median(pooled)) if pooled.size else None


def _open_data(config: TrainConfig) -> tuple[Any, dict[str, str] | None, str | None]:
    from ..data.dataset import CellDataset
    from ..data.splitfile import read_split, split_hash

    dataset = CellDataset.open(config.data_dir, microscopes=None)  # the tags its manifest uses (D, E, ...)
    if not config.split_path:
        check_microscopes(config, dataset, None)
        return dataset, None, None
    subsets = read_split(config.split_path)
    check_microscopes(config, dataset, subsets)
    return dataset, subsets, split_hash(subsets)


def no_split_warning(config: TrainConfig) -> str | None:
    """The warning for a run without a split (None with one): what it trains on, and how to split.

    Without ``split_path`` every image of the dataset trains, those a split would
    hold out for dev and test included: no score chooses the epoch (the last is
    kept) and nothing is left to measure the model on.
    """
    if config.split_path:
        return None
    found = Path(config.data_dir) / "split.csv"
    how = (
        f"{found} exists: pass --split {found}"
        if found.is_file()
        else f"napari-cellseg split --data {config.data_dir} --target TAG --out split.csv (TAG: the "
        "microscope to score on), then pass --split split.csv"
    )
    return (
        "no split file (--split; the Fine-tune panel's Split file): this run trains on every image of "
        f"{config.data_dir}, test images included; there is no dev set to choose the best epoch (the last "
        f"epoch is kept) and no held-out test set to measure the model on. To split the dataset: {how}"
    )


def check_microscopes(config: TrainConfig, dataset: Any, subsets: dict[str, str] | None) -> None:
    """TrainingError naming a tag of ``microscopes`` or ``sample_weights`` that the data lacks.

    The tags are those of the images the run can use: the split's rows (those the
    dataset has; others are refused later), or the whole dataset without a split.
    """
    ids = dataset.ids if subsets is None else [i for i in subsets if i in dataset]
    present = sorted({dataset[i].microscope for i in ids})
    where = f"the split {config.split_path}" if subsets is not None else f"the dataset {config.data_dir}"
    for setting, option, tags in (
        ("microscopes", "--microscopes", list(config.microscopes)),
        ("sample_weights", "--oversample", list(config.sample_weights)),
    ):
        unknown = [t for t in tags if t not in present]
        if unknown:
            raise TrainingError(
                f"{setting} ({option}): no image of microscope {unknown[0]!r} in {where}; "
                f"its microscopes are: {', '.join(present) or 'none'}"
            )


def train_microscopes(config: TrainConfig, dataset: Any) -> tuple[str, ...]:
    """The microscopes a run trains on: ``config.microscopes``, or (empty) every tag of the dataset."""
    return tuple(config.microscopes) or tuple(dataset.microscopes)


def build_run(config: TrainConfig, context: DistributedContext, resume_dir: Any = None) -> Run:
    """Set up every object of a run (seeded: the same config builds the same run).

    With ``resume_dir`` (the run's ``last/``), the network, its normalisation and
    watershed settings come from the stored ``config.json``, not from M2 or the
    starting model (their folders may have moved or changed); the engine then
    loads the stored weights.

    Raises
    ------
    TrainingError, DatasetError, SplitError, ConfigError, SurgeryError, ModelLoadError
        With a message naming the file or setting at fault.
    """
    import torch

    from ..models.surgery import build_model
    from .distributed import wrap_model
    from .init_model import apply_init_model, load_init_model
    from .losses import build_loss

    config = config.validate() if resume_dir is not None else apply_init_model(config.validate())
    problem = default_new_layers_problem(config) if resume_dir is None and not config.init_model else None
    if problem:  # before the data is read: surgery would say the same without the default
        top = config.transfer_layers + MAX_EXTRA_BLOCKS
        raise TrainingError(f"{problem}; give it with --la N (--new-layers N), N from 1 to {top}")
    _limit_threads(config.resolved_threads())
    dataset, subsets, split_hash = _open_data(config)
    try:
        train_ids, dev_ids = select_ids(dataset, subsets, train_microscopes(config, dataset))
    except ValueError as err:
        raise TrainingError(str(err)) from None
    if not train_ids:
        raise TrainingError(
            f"no training images: the split {config.split_path} has no 'train' rows of microscopes "
            f"{list(train_microscopes(config, dataset))} in {config.data_dir}"
        )
    from ..data.size import size_factors

    factors = size_factors(dataset, [*train_ids, *dev_ids], config.size_diameter)
    _check_patch_size(config, dataset, train_ids, factors)
    device, reason = pick_device(config, context)
    torch.manual_seed(config.seed)  # the new layers' initialisation
    init_normalization, init_watershed = None, {}
    if resume_dir is not None:
        from ..models.checkpoint import build_model_from_config, load_model_config

        stored = load_model_config(resume_dir)  # the network as it trains: weights restored later
        model = build_model_from_config(stored)
        # a config.json from before m2.pretrained was kept says True: the run's own setting knows
        model.m2_pretrained = model.m2_pretrained and config.pretrained
        init_normalization, init_watershed = stored.normalization, dict(stored.watershed or {})
    elif config.init_model:
        model, init_config = load_init_model(config)
        init_normalization = init_config.normalization
        init_watershed = dict(init_config.watershed or {})  # tuned for this network: a better start
    else:
        model = build_model(
            m2=config.m2,
            transfer_layers=config.transfer_layers,
            new_layers=config.new_layers,
            frozen_layers=config.frozen_layers,
            out_channels=config.out_channels,
            pretrained=config.pretrained,
            **({"decoder_channels": tuple(config.decoder_channels)} if config.decoder_channels else {}),
        )
    # channels_last: faster on CUDA, and ~1.35x for this network's training step on the CPU.
    channels_last = device.type in ("cuda", "cpu")
    model = model.to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = wrap_model(model, context, device)
    if init_normalization is not None and (config.normalization is None or resume_dir is not None):
        normalization = init_normalization  # the input rule the starting model (or the run) learned with
    else:
        normalization = config.normalization_config(model.m2_config.mean, model.m2_config.std)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    amp_dtype = pick_amp(config.amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None  # fp16 is CUDA's only
    from ..data.augment import Augmenter

    weights = image_weights(
        dataset, train_ids, config.sample_weights, config.patch_size, config.area_weighted, factors
    )
    crops = CropDataset(
        dataset, train_ids, weights, Augmenter(config.augment_config()), normalization,
        thickness=config.target_thickness, seed=config.seed, cache_bytes=config.cache_mb << 20,
        size_factors=factors, target_profile=config.target_profile, contact_weight=config.contact_weight,
    )  # fmt: skip
    if config.size_diameter is not None:
        object_diameter = config.size_diameter  # every image is brought to it
    else:
        object_diameter = estimate_object_diameter(dataset, train_ids) if context.is_main else None
    counts: dict[str, int] = {}
    for image_id in train_ids:
        counts[dataset[image_id].microscope] = counts.get(dataset[image_id].microscope, 0) + 1
    return Run(
        config=config, context=context, device=device, device_reason=reason, amp_dtype=amp_dtype,
        channels_last=channels_last, dataset=dataset, train_ids=train_ids, dev_ids=dev_ids,
        split_hash=split_hash, model=model, net=net,
        loss_fn=build_loss(config.loss, class_weights=config.class_weights, boundary_weight=config.boundary_weight,
                           contact_weight=config.contact_weight, dice_weight=config.dice_weight),
        optimizer=optimizer, scheduler=make_scheduler(config, optimizer), scaler=scaler,
        normalization=normalization, crops=crops,
        object_diameter=object_diameter, size_factors=factors,
        train_counts=counts, watershed=init_watershed,
    )  # fmt: skip


def _check_patch_size(
    config: TrainConfig, dataset: Any, train_ids: list[str], factors: dict[str, float]
) -> None:
    """Refuse crops larger than every training image (after resampling).

    Such crops are mostly padding, and their memory grows with the square of
    the side: --patch-size 5000 was killed at 24 GB before its first step. The
    default size always passes (small images are padded up to it, as before).
    """
    sides = {}
    for image_id in train_ids:
        height, width = dataset[image_id].shape
        factor = factors.get(image_id, 1.0)
        sides[image_id] = (round(height * factor), round(width * factor))
    largest_id = max(sides, key=lambda i: max(sides[i]))
    height, width = sides[largest_id]
    limit = max(height, width, PATCH_SIZE_FLOOR)
    if config.patch_size > limit:
        resampled = " after size normalisation" if config.size_diameter is not None else ""
        raise TrainingError(
            f"patch_size {config.patch_size} (--patch-size) is larger than the largest training image "
            f"({largest_id}: {height}x{width} px{resampled}); crops would be mostly padding and need "
            f"far more memory: choose at most {limit}"
        )


def _limit_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)  # the augmentation's warps run in this process without workers
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


def worker_count(config: TrainConfig, device: Any) -> int:
    """Data-loading workers: as configured, or for -1 none on the CPU and up to 8 on CUDA.

    On a GPU the crops are the limit (about 120 augmented 256x256 crops/s per worker
    measured beside an H100 that takes far more), so CUDA gets a core per worker,
    one left for the training process, at most 8 (each keeps its own image cache).
    """
    cores = os.cpu_count() or 1
    if config.num_workers >= 0:
        return min(config.num_workers, cores)
    if device.type != "cuda":
        return 0
    local = os.environ.get("LOCAL_WORLD_SIZE", "").strip()
    per_process = cores // (int(local) if local.isdigit() and int(local) > 0 else 1)
    return max(0, min(8, per_process - 1))
