"""``TrainConfig``: every setting of a fine-tuning run, as a JSON round-trip dataclass.

The augmentation and normalisation settings are stored as plain dicts (an
``AugmentConfig`` / ``NormalizationConfig`` in dict form) so that this module
stays light (no OpenCV, no torch) for the CLI and the GUI; :meth:`TrainConfig.problems`
checks them (the augmentation without building it).
"""

from __future__ import annotations

import math
import numbers
import os
from dataclasses import dataclass, field, fields
from typing import Any

from ..classes import DEFAULT_BOUNDARY_WEIGHT_BCE, DEFAULT_CLASS_WEIGHTS, MICROSCOPES, check_microscope_tag
from ..config import ConfigError, JsonConfig, check_fields
from ..data.augment import TRAINING_PRESET
from ..data.soft_targets import TARGET_PROFILES
from ..models.defaults import MAX_EXTRA_BLOCKS
from ..models.device import device_problems

LOSSES = ("weighted-ce", "weighted-bce")
SCHEDULERS = ("cosine", "one-cycle", "constant")
AMP_MODES = ("auto", "bf16", "fp16", "off")
DEV_METRICS = ("auto", "ap50", "pixel_f1")
MAX_SEED = 2**64 - 1  # torch.manual_seed's largest
# fp16 trains with a gradient scaler, which the engine runs on CUDA only.
FP16_ADVICE = "use --amp bf16 (it needs no gradient scaler) or --amp off"

# Settings that only say where or how fast to run: a resumed run may change them.
RUNTIME_FIELDS = frozenset(
    {"data_dir", "split_path", "out_dir", "num_threads", "num_workers", "device", "cache_mb"}
)


@dataclass
class TrainConfig(JsonConfig):
    """Settings of one fine-tuning run (see ``docs/tuning.md``, section Training).

    Parameters
    ----------
    data_dir : str
        Dataset folder (``images/``, ``masks/`` or ``targets/``, ``manifest.csv``).
    split_path : str or None
        ``split.csv`` (id, subset). Train on ``train`` rows, score on ``dev`` rows.
        None: every image trains and there is no dev score (best = last).
    out_dir : str
        Model directory written by the run (best model + ``last/`` for resuming).
    m2 : str
        ``"default"`` (bundled ImageNet EfficientNet-Lite0) or an M2 directory/file.
    transfer_layers, new_layers, frozen_layers : int
        ``l``, ``l_a`` and ``l_f`` (see ``models.surgery.build_model``).
    pretrained : bool
        False: same architecture, random initialisation (the "from scratch" ablation).
    init_model : str or None
        A trained segmentation model directory to start from instead of M2
        (``"default"``: the bundled model): the whole network starts from its
        weights and keeps its ``l``, ``l_a``, decoder and outputs (see
        :mod:`.init_model`); ``frozen_layers`` still applies.
    grow_decoder : bool
        With ``init_model``: keep this config's ``new_layers``, more than the
        model's. The model's decoder blocks are kept and the finer-resolution
        blocks and the output layer start new (a model whose logits are at
        stride 4 becomes one at stride 2 or 1). The CLI sets it when
        ``--new-layers`` asks for more layers than the model has.
    decoder_channels : tuple of int or None
        Decoder widths; None uses the model's default.
    loss : {"weighted-ce", "weighted-bce"}
    class_weights : tuple of 3 floats
        Background / boundary / interior weights of ``weighted-ce``.
    boundary_weight : float
        Boundary term weight of ``weighted-bce``.
    target_thickness : int
        Boundary thickness in pixels of the 3-class targets.
    target_profile : {"hard", "distance"}
        ``hard``: one class per pixel. ``distance``: soft targets whose
        interior share rises from each cell's edge to its centre
        (:mod:`napari_cellseg.data.soft_targets`; ``weighted-ce`` only).
    contact_weight : float
        Weight multiplier of the boundary pixels within ``target_thickness + 1``
        pixels of two cells, where touching cells merge (``weighted-ce`` with
        hard targets only); 1: off.
    dice_weight : float
        Weight of a soft Dice loss over the boundary and interior classes added
        to the cross-entropy (``weighted-ce`` only; :mod:`.losses`); 0: off.
    object_diameter : float or None
        Size normalisation: resample every training and dev image so that its
        nuclei's median diameter is this many pixels (see
        :mod:`napari_cellseg.data.size`); the model then estimates each
        image's diameter when it segments. None: images at their own scale,
        unless ``init_model`` resamples images (then its size is taken);
        0: images at their own scale in any case.
    microscopes : tuple of str
        Train only on images of these microscopes (e.g. ``("C",)``); empty
        (the default): every microscope of the dataset, whatever its tags
        (``D``, ``E``, ...). Checked against the dataset's tags when it opens.
    sample_weights : dict
        Per-microscope over-sampling factor, e.g. ``{"C": 3}`` (missing = 1).
    area_weighted : bool
        Draw images in proportion to their area in patches (a 1024x1024 image
        gives 16 times the crops of a 256x256 one); False: every image equally.
    epochs, steps_per_epoch, batch_size : int
        An epoch is ``steps_per_epoch`` optimizer steps of ``batch_size`` random
        crops per process (so ``world_size`` times more under torchrun).
    lr, weight_decay : float
        AdamW settings.
    scheduler : {"cosine", "one-cycle", "constant"}
        Cosine decay after a linear warm-up of ``warmup_fraction`` of the steps.
    patch_size : int
        Side of the square training crops.
    augment_preset : str
        ``Augmenter`` preset (``none``, ``light``, ``default``, ``stains``,
        ``scanners``, ``strong``); ``stains`` is ``default`` plus restaining and
        grey, ``scanners`` is ``stains`` plus lower resolution and JPEG.
    augment : dict or None
        A full ``AugmentConfig`` as a dict; overrides the preset when given.
    normalization : dict or None
        A ``NormalizationConfig`` as a dict; None uses the defaults with M2's mean/std.
    seed : int
        Seeds initialisation, crops and augmentation: same seed, same run.
    num_threads : int
        torch threads; 0 leaves one core free for the GUI (``cpu_count - 1``, min 1).
    num_workers : int
        Data-loading processes (0: in the training process). -1 (default):
        none on the CPU (leaves the cores to the network and a GUI); on CUDA
        a pinned-memory worker per core but one, at most 8.
    device : str
        ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``; under torchrun each process
        takes the GPU of its ``LOCAL_RANK``, so ``cuda:N`` is refused there.
    amp : {"auto", "bf16", "fp16", "off"}
        Mixed precision; ``auto`` is bf16 on CUDA where supported, else fp16 on
        CUDA, off on CPU/MPS.
    dev_every : int
        Evaluate the dev set every this many epochs (and at the last one).
    max_dev_images : int or None
        Score on at most this many dev images (None: all).
    grad_clip : float or None
        Clip the gradient norm to this value.
    dev_metric : {"auto", "ap50", "pixel_f1"}
        Dev score that picks the best checkpoint: ``ap50`` (AP at IoU 0.5 after
        the watershed), ``pixel_f1`` (mean F1 of boundary and interior pixels);
        ``auto`` is ``ap50`` when the watershed and metrics modules are there.
    cache_mb : int
        Memory for decoded images and targets per data-loading process.
    """

    data_dir: str = ""
    split_path: str | None = None
    out_dir: str = ""
    m2: str = "default"
    transfer_layers: int = 4
    new_layers: int = 4
    frozen_layers: int = 0
    pretrained: bool = True
    init_model: str | None = None
    grow_decoder: bool = False
    decoder_channels: tuple[int, ...] | None = None
    loss: str = "weighted-ce"
    class_weights: tuple[float, float, float] = DEFAULT_CLASS_WEIGHTS
    boundary_weight: float = DEFAULT_BOUNDARY_WEIGHT_BCE
    target_thickness: int = 1
    target_profile: str = "hard"
    contact_weight: float = 1.0
    dice_weight: float = 0.0
    object_diameter: float | None = None
    microscopes: tuple[str, ...] = ()
    sample_weights: dict[str, float] = field(default_factory=dict)
    area_weighted: bool = True
    epochs: int = 20
    steps_per_epoch: int = 100
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    scheduler: str = "cosine"
    warmup_fraction: float = 0.05
    patch_size: int = 256
    augment_preset: str = TRAINING_PRESET
    augment: dict[str, Any] | None = None
    normalization: dict[str, Any] | None = None
    seed: int = 0
    num_threads: int = 0
    num_workers: int = -1
    device: str = "auto"
    amp: str = "auto"
    dev_every: int = 1
    max_dev_images: int | None = None
    grad_clip: float | None = None
    dev_metric: str = "auto"
    cache_mb: int = 1024

    def __post_init__(self) -> None:
        # types here, where a wrong one is made; values in problems(), all listed at once
        check_fields(self)

    def problems(self) -> list[str]:
        """Every invalid setting, as readable sentences (empty when valid)."""
        out = []
        if not self.data_dir:
            out.append("data_dir is required (the dataset folder)")
        if not self.out_dir:
            out.append("out_dir is required (the model directory to write)")
        for name in ("epochs", "steps_per_epoch", "batch_size", "dev_every", "target_thickness"):
            if int(getattr(self, name)) < 1:
                out.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.patch_size < 16:
            out.append(f"patch_size must be >= 16 pixels, got {self.patch_size}")
        if not _finite(self.lr, above=0):
            out.append(f"lr must be > 0 and finite, got {self.lr}")
        if not _finite(self.weight_decay, at_least=0):
            out.append(f"weight_decay must be >= 0 and finite, got {self.weight_decay}")
        # numpy's crop generators take no negative seed, torch none past 64 bits
        if not 0 <= self.seed <= MAX_SEED:
            out.append(f"seed must be a whole number from 0 to 2**64 - 1, got {self.seed}")
        if self.cache_mb < 0:
            out.append(f"cache_mb must be >= 0 (megabytes of images kept per process), got {self.cache_mb}")
        if not 0 <= self.warmup_fraction < 1:
            out.append(f"warmup_fraction must be in [0, 1), got {self.warmup_fraction}")
        for name, value, valid in (
            ("loss", self.loss, LOSSES),
            ("scheduler", self.scheduler, SCHEDULERS),
            ("amp", self.amp, AMP_MODES),
            ("dev_metric", self.dev_metric, DEV_METRICS),
        ):
            if value not in valid:
                out.append(f"{name} must be one of {list(valid)}, got {value!r}")
        out += device_problems(self.device)
        if self.target_profile not in TARGET_PROFILES:
            out.append(f"target_profile must be one of {list(TARGET_PROFILES)}, got {self.target_profile!r}")
        elif self.target_profile != "hard" and self.loss != "weighted-ce":
            out.append(f"target_profile={self.target_profile!r} needs loss 'weighted-ce', got {self.loss!r}")
        if not _finite(self.contact_weight, above=0):
            out.append(f"contact_weight must be > 0 and finite (1: off), got {self.contact_weight}")
        elif self.contact_weight != 1.0 and (self.loss != "weighted-ce" or self.target_profile != "hard"):
            out.append(
                f"contact_weight={self.contact_weight} needs loss 'weighted-ce' with target_profile 'hard', "
                f"got {self.loss!r} / {self.target_profile!r}"
            )
        if not _finite(self.dice_weight, at_least=0):
            out.append(f"dice_weight must be >= 0 and finite (0: off), got {self.dice_weight}")
        elif self.dice_weight and self.loss != "weighted-ce":
            out.append(f"dice_weight={self.dice_weight} needs loss 'weighted-ce', got {self.loss!r}")
        if len(self.class_weights) != 3 or not all(_finite(w, above=0) for w in self.class_weights):
            out.append(f"class_weights must be 3 positive finite numbers, got {list(self.class_weights)}")
        if not _finite(self.boundary_weight, above=0):
            out.append(f"boundary_weight must be > 0 and finite, got {self.boundary_weight}")
        # Tags are the dataset's own (D, E, ...): checked against it when it opens (training.setup).
        bad = [why for why in map(check_microscope_tag, self.microscopes) if why]
        if bad:
            out.append(f"microscopes: {bad[0]}")
        for key, weight in self.sample_weights.items():
            if check_microscope_tag(key) or not _finite(weight, above=0):
                out.append(f"sample_weights: {key}={weight} (need a microscope tag and a finite weight > 0)")
        if self.num_threads < 0:
            out.append(f"num_threads must be >= 0 (0: all cores but one), got {self.num_threads}")
        if self.num_workers < -1:
            out.append(f"num_workers must be >= -1 (-1: automatic), got {self.num_workers}")
        if self.max_dev_images is not None and self.max_dev_images < 1:
            out.append(f"max_dev_images must be >= 1 or None, got {self.max_dev_images}")
        if self.object_diameter is not None and not _finite(self.object_diameter, at_least=0):
            out.append(
                f"object_diameter must be > 0 pixels, 0 (the images' own scale) or None, and finite, "
                f"got {self.object_diameter}"
            )
        if self.init_model and not self.pretrained:
            out.append(
                f"init_model={self.init_model!r} and pretrained=False contradict "
                "(start from a trained model or from random weights, not both)"
            )
        if self.grow_decoder and not self.init_model:
            out.append("grow_decoder=True needs init_model (the model whose decoder grows)")
        if self.grad_clip is not None and not _finite(self.grad_clip, above=0):
            out.append(f"grad_clip must be > 0 and finite, or None, got {self.grad_clip}")
        if self.amp == "fp16" and str(self.device).strip().lower() in ("cpu", "mps"):  # "CPU" too
            out.append(
                f"amp 'fp16' trains on CUDA only (with a gradient scaler), device is {self.device!r}: {FP16_ADVICE}"
            )
        from ..data.normalize import NormalizationConfig

        out += self._augment_problems()
        out += _dict_problems("normalization", self.normalization, NormalizationConfig)
        return out

    def _augment_problems(self) -> list[str]:
        """An unknown preset or an invalid ``augment`` dict, caught here rather than when its run starts."""
        from ..data.augment_config import PRESETS, AugmentConfig

        if self.augment is None and self.augment_preset not in PRESETS:
            return [f"augment_preset must be one of {sorted(PRESETS)}, got {self.augment_preset!r}"]
        return _dict_problems("augment", self.augment, AugmentConfig)

    def validate(self) -> TrainConfig:
        """Raise :class:`ConfigError` listing every invalid setting; return self."""
        problems = self.problems()
        if problems:
            raise ConfigError("invalid training settings:\n  - " + "\n  - ".join(problems))
        return self

    @property
    def size_diameter(self) -> float | None:
        """The nucleus size images are resampled to; None when they keep their own scale."""
        return float(self.object_diameter) if self.object_diameter else None

    @property
    def out_channels(self) -> int:
        return 3 if self.loss == "weighted-ce" else 2

    def resolved_threads(self) -> int:
        """``num_threads``; 0 means all cores but one (at least one), shared among local ranks."""
        if self.num_threads > 0:
            return self.num_threads
        # Under torchrun the processes of one machine share its cores.
        local = os.environ.get("LOCAL_WORLD_SIZE", "").strip()
        processes = int(local) if local.isdigit() and int(local) > 0 else 1
        return max(1, ((os.cpu_count() or 2) - 1) // processes)

    def augment_config(self):
        """The ``AugmentConfig`` of this run: ``augment`` if given, else the preset.

        ``patch_size`` always comes from this config.
        """
        import dataclasses

        from ..data.augment import AugmentConfig

        patch = (self.patch_size, self.patch_size)
        if self.augment is not None:
            return dataclasses.replace(AugmentConfig.from_dict(dict(self.augment)), patch_size=patch)
        return AugmentConfig.preset(self.augment_preset, patch_size=patch)

    def normalization_config(self, mean=None, std=None):
        """The ``NormalizationConfig``: ``normalization`` (if given) over the defaults, with M2's mean/std.

        The saved model always standardises with M2's mean/std, so a ``normalization``
        that sets other values is refused rather than trained with and then dropped.
        """
        from ..data.normalize import NormalizationConfig

        stats = {k: tuple(v) for k, v in (("mean", mean), ("std", std)) if v is not None}
        given = dict(self.normalization or {})
        for name, value in stats.items():
            if name in given and tuple(given[name]) != value:
                raise ConfigError(
                    f"normalization: {name} {list(given[name])} differs from the M2's {list(value)}; "
                    "a model standardises with its M2's statistics (leave mean and std out)"
                )
        return NormalizationConfig.from_dict({**given, **stats})

    def incompatible_with(self, other: TrainConfig) -> list[str]:
        """Settings (other than :data:`RUNTIME_FIELDS`) that differ from ``other``."""
        mine, theirs = self.to_dict(), other.to_dict()
        # () is every tag of the dataset; a run stored before that default said A, B, C, the only tags
        # a dataset could then use for training: the same images.
        for settings in (mine, theirs):
            tags = tuple(settings["microscopes"])
            settings["microscopes"] = () if tags == MICROSCOPES else tags
        return [
            f"{f.name}: {theirs[f.name]!r} -> {mine[f.name]!r}"
            for f in fields(self)
            if f.name not in RUNTIME_FIELDS and mine[f.name] != theirs[f.name]
        ]


def _finite(value: float, *, above: float | None = None, at_least: float | None = None) -> bool:
    """Whether ``value`` is a finite number ``> above`` / ``>= at_least`` (NaN and inf never are)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return False
    return (above is None or value > above) and (at_least is None or value >= at_least)


def default_new_layers_problem(config: TrainConfig) -> str | None:
    """Why ``new_layers`` cannot be its default for ``config``'s ``l``, saying it is the default; else None.

    ``l_a`` goes from 1 to ``l + 2``: ``l = 1`` alone asks for the default
    ``l_a = 4``, which the user never chose. Other ranges are
    :func:`napari_cellseg.models.defaults.layer_problems`'s to judge.
    """
    default = TrainConfig.__dataclass_fields__["new_layers"].default
    l, l_a = config.transfer_layers, config.new_layers  # noqa: E741
    if l_a != default or not 1 <= l or l_a <= l + MAX_EXTRA_BLOCKS:
        return None
    return (
        f"new_layers l_a={l_a} is out of range for l={l} (1..{l + MAX_EXTRA_BLOCKS}): {default} is the "
        f"default of l_a (made for the default l={TrainConfig.__dataclass_fields__['transfer_layers'].default}), "
        "used when l_a is not given"
    )


def _dict_problems(name: str, value, config_class) -> list[str]:
    """``[f"{name}: why"]`` when ``config_class`` refuses the settings dict ``value``, else []."""
    if value is None:
        return []
    try:
        config_class.from_dict(dict(value))
    except (ConfigError, TypeError, ValueError) as err:
        return [f"{name}: {err}"]
    return []
