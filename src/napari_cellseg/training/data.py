"""Training crops: a deterministic, resumable, shardable stream over a ``CellDataset``.

An epoch is ``steps_per_epoch`` batches of random crops, not a pass over the
images: the images are few and vary in size (256x256 to 1388x1040).

Determinism without sampler state
---------------------------------
Crop number ``k`` of a run (counted from the first step, over all ranks) is a
pure function of ``(seed, k)``: its random generator is
``numpy.random.default_rng([seed, k])``, which picks the image (weighted, see
:func:`image_weights`) and drives the augmentation. So:

- resuming at optimizer step ``s`` replays exactly the crops an uninterrupted
  run would have seen (the sampler position is just ``s``);
- results do not depend on the number of data-loading workers;
- under DDP, step ``s`` uses the global crops ``[s*B*W, (s+1)*B*W)`` and rank
  ``r`` takes ``[s*B*W + r*B, s*B*W + (r+1)*B)`` (``B`` per-rank batch, ``W``
  ranks): disjoint shards whose union is the single-process batch of ``B*W``.

Per crop: ``scale_intensity`` of the whole image (whole-image percentiles,
cached), ``Augmenter`` (crop + warp + photometric; instance labels are warped
and turned into 3-class targets afterwards, so the boundary keeps its width at
every zoom), then ``standardize``: the rule of :mod:`napari_cellseg.data.normalize`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..classes import BOUNDARY

if TYPE_CHECKING:
    import torch

    from ..data.augment import Augmenter
    from ..data.dataset import CellDataset
    from ..data.normalize import NormalizationConfig


def image_weights(
    dataset: CellDataset,
    ids: Sequence[str],
    sample_weights: Mapping[str, float] | None = None,
    patch_size: int = 256,
    area_weighted: bool = True,
    size_factors: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Probability of drawing each image for a crop.

    Weight of an image = its microscope's factor (``sample_weights``, default
    1) times, when ``area_weighted``, the number of patches its area holds
    (at least 1; the area after size normalisation by ``size_factors``).
    Normalised to sum to 1.

    Raises
    ------
    ValueError
        If ``ids`` is empty.
    """
    if not ids:
        raise ValueError("no training images: the split and microscope filter leave none")
    sample_weights = sample_weights or {}
    weights = np.empty(len(ids), dtype=np.float64)
    for i, image_id in enumerate(ids):
        record = dataset[image_id]
        weight = float(sample_weights.get(record.microscope, 1.0))
        if area_weighted:
            height, width = record.shape
            zoom = (size_factors or {}).get(image_id, 1.0) ** 2
            weight *= max(1.0, zoom * height * width / float(patch_size * patch_size))
        weights[i] = weight
    return weights / weights.sum()


class ImageCache:
    """Decoded, intensity-scaled images and their labels, kept within ``max_bytes``.

    Holds per id the float32 image scaled to [0, 1] with its whole-image
    percentiles, and the instance labels (or the 3-class target when the
    dataset stores targets), both resampled by the image's size factor
    (:mod:`napari_cellseg.data.size`) when one is given. Least recently used
    entries are dropped first.
    """

    def __init__(
        self,
        dataset: CellDataset,
        normalization: NormalizationConfig,
        thickness: int = 1,
        max_bytes: int = 1 << 30,
        size_factors: Mapping[str, float] | None = None,
    ):
        self.dataset = dataset
        self.size_factors = dict(size_factors or {})
        self.normalization = normalization
        self.thickness = thickness
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[np.ndarray, np.ndarray, bool]] = OrderedDict()
        self._bytes = 0

    def get(self, image_id: str) -> tuple[np.ndarray, np.ndarray, bool]:
        """``(scaled image, labels, labels_are_instances)`` for ``image_id``."""
        entry = self._entries.get(image_id)
        if entry is not None:
            self._entries.move_to_end(image_id)
            return entry
        entry = self._load(image_id)
        size = entry[0].nbytes + entry[1].nbytes
        if size > self.max_bytes:  # larger than the cache: kept alone, or each of its crops decodes it again
            self._entries.clear()
            self._bytes = 0
        while self._entries and self._bytes + size > self.max_bytes:
            _, (old_image, old_labels, _) = self._entries.popitem(last=False)
            self._bytes -= old_image.nbytes + old_labels.nbytes
        self._entries[image_id] = entry
        self._bytes += size
        return entry

    def _load(self, image_id: str) -> tuple[np.ndarray, np.ndarray, bool]:
        from ..data.normalize import scale_intensity
        from ..data.size import resize_image, resize_labels

        record = self.dataset[image_id]
        factor = self.size_factors.get(image_id, 1.0)
        image = resize_image(scale_intensity(self.dataset.load_image(image_id), self.normalization), factor)
        if record.label_kind == "masks":
            return image, resize_labels(self.dataset.load_instances(image_id), factor), True
        return image, resize_labels(self.dataset.load_target(image_id), factor), False


class CropDataset:
    """Map-style dataset: index ``k`` -> crop number ``k`` of the run (see module doc).

    Returns ``(float32 tensor (3, P, P), int64 tensor (P, P))`` pairs, or with
    ``target_profile="distance"`` a float32 ``(3, P, P)`` soft target
    (:func:`~napari_cellseg.data.soft_targets.distance_targets`). Works with a
    ``torch.utils.data.DataLoader`` and any number of workers (each worker keeps
    its own :class:`ImageCache`).
    """

    def __init__(
        self,
        dataset: CellDataset,
        ids: Sequence[str],
        probabilities: np.ndarray,
        augmenter: Augmenter,
        normalization: NormalizationConfig,
        thickness: int = 1,
        seed: int = 0,
        cache_bytes: int = 1 << 30,
        size_factors: Mapping[str, float] | None = None,
        target_profile: str = "hard",
        contact_weight: float = 1.0,
    ):
        if len(ids) != len(probabilities):
            raise ValueError(f"{len(ids)} ids but {len(probabilities)} probabilities")
        self.ids = list(ids)
        self.cumulative = np.cumsum(probabilities)
        self.augmenter = augmenter
        self.normalization = normalization
        self.thickness = thickness
        self.target_profile = target_profile
        self.mark_contacts = contact_weight != 1.0  # the loss weighs them (losses.CONTACT_TARGET)
        self.seed = int(seed)
        self.cache = ImageCache(dataset, normalization, thickness, cache_bytes, size_factors)

    def __len__(self) -> int:
        return 2**62  # an unbounded stream; the sampler decides what is read

    def image_for(self, index: int) -> str:
        """The image crop ``index`` is drawn from (the generator's first draw)."""
        return self.ids[self._pick(np.random.default_rng([self.seed, int(index)]))]

    def _pick(self, rng: np.random.Generator) -> int:
        position = int(np.searchsorted(self.cumulative, rng.random() * self.cumulative[-1], side="right"))
        return min(position, len(self.ids) - 1)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Crop ``index`` as numpy: float32 ``(3, P, P)`` input and uint8 ``(P, P)`` target
        (float32 ``(3, P, P)`` for the ``distance`` profile). With ``contact_weight``
        other than 1, boundary pixels within ``thickness + 1`` pixels of two cells
        hold ``CONTACT_TARGET`` (3) for the loss."""
        from ..data.normalize import standardize
        from ..data.targets import instances_to_targets, targets_to_instances

        rng = np.random.default_rng([self.seed, int(index)])
        image, labels, are_instances = self.cache.get(self.ids[self._pick(rng)])
        crop, crop_labels = self.augmenter(image, labels, rng)
        if self.target_profile == "distance":
            from ..data.soft_targets import distance_targets

            instances = crop_labels if are_instances else targets_to_instances(crop_labels)
            return standardize(crop, self.normalization), distance_targets(instances)
        target = instances_to_targets(crop_labels, thickness=self.thickness) if are_instances else crop_labels
        target = np.array(target, dtype=np.uint8)  # a copy: the cache's target stays as it is
        if self.mark_contacts:
            from ..data.targets import contact_pixels
            from .losses import CONTACT_TARGET

            instances = crop_labels if are_instances else targets_to_instances(crop_labels)
            target[(target == BOUNDARY) & contact_pixels(instances, radius=self.thickness + 1)] = (
                CONTACT_TARGET
            )
        return standardize(crop, self.normalization), target

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        image, target = self.sample(index)
        if target.dtype == np.float32:  # soft targets
            return torch.from_numpy(image), torch.from_numpy(target)
        return torch.from_numpy(image), torch.from_numpy(target.astype(np.int64))


class StepSampler:
    """Crop indices of optimizer steps ``start_step`` .. ``stop_step - 1`` for one rank.

    Batch ``s`` of rank ``r`` is ``[s*B*W + r*B, s*B*W + (r+1)*B)``; with a
    DataLoader of ``batch_size=B`` each yielded batch is one step's shard.
    """

    def __init__(self, batch_size: int, start_step: int, stop_step: int, rank: int = 0, world_size: int = 1):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in 0..{world_size - 1}")
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.start_step, self.stop_step = start_step, max(start_step, stop_step)

    def indices(self, step: int) -> range:
        base = (step * self.world_size + self.rank) * self.batch_size
        return range(base, base + self.batch_size)

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.stop_step):
            yield from self.indices(step)

    def __len__(self) -> int:
        return (self.stop_step - self.start_step) * self.batch_size


def make_loader(
    crops: CropDataset,
    sampler: StepSampler,
    num_workers: int = 0,
    device: Any = None,
) -> Any:
    """A DataLoader yielding one step's ``(images, targets)`` shard per batch.

    On a CUDA ``device`` the batches are pinned for that GPU (see :class:`PinnedFor`).
    """
    import torch
    from torch.utils.data import DataLoader

    cuda = device is not None and torch.device(device).type == "cuda"
    loader = DataLoader(
        crops,  # type: ignore[arg-type]
        batch_size=sampler.batch_size,
        sampler=sampler,  # type: ignore[arg-type]
        num_workers=num_workers,
        pin_memory=cuda,
        persistent_workers=False,
        # A private generator: the loader must not draw from torch's global RNG,
        # which would make a resumed run differ from an uninterrupted one.
        generator=torch.Generator().manual_seed(crops.seed),
        worker_init_fn=_limit_worker_threads,
        prefetch_factor=2 if num_workers > 0 else None,
    )
    return PinnedFor(loader, device) if cuda else loader


class PinnedFor:
    """A pinning DataLoader iterated with ``device`` as torch's current GPU.

    The loader pins for the current GPU (its pinning thread takes it when iteration
    starts; without workers each batch is pinned as it is drawn), which stays GPU 0
    for ``cuda:N``: a CUDA context and memory on a GPU the run does not use. The
    current GPU is set around those calls only, never for the process (the GUI's
    training runs in a thread of napari's process).
    """

    def __init__(self, loader: Any, device: Any):
        self.loader, self.device = loader, device

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[Any]:
        import torch

        with torch.cuda.device(self.device):
            batches = iter(self.loader)
        while True:
            with torch.cuda.device(self.device):
                batch = next(batches, None)
            if batch is None:
                return
            yield batch


def _limit_worker_threads(_worker_id: int) -> None:
    # Workers do numpy/OpenCV work; one thread each keeps the machine usable.
    import torch

    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover - cv2 is a dependency
        pass


def select_ids(
    dataset: CellDataset,
    subsets: Mapping[str, str] | None,
    microscopes: Sequence[str],
) -> tuple[list[str], list[str]]:
    """Training ids (``train`` rows of ``microscopes``) and dev ids (``dev`` rows).

    Without a split every image of ``microscopes`` trains and there is no dev set.

    Raises
    ------
    ValueError
        If the split names ids that the dataset does not have.
    """
    if subsets is None:
        return [r.id for r in dataset.records if r.microscope in microscopes], []
    missing = [i for i in subsets if i not in dataset]
    if missing:
        raise ValueError(
            f"the split lists {len(missing)} id(s) that are not in the dataset {dataset.root} "
            f"(e.g. {', '.join(missing[:3])}): is it the split of another dataset?"
        )
    train = [i for i, s in subsets.items() if s == "train" and dataset[i].microscope in microscopes]
    dev = [i for i, s in subsets.items() if s == "dev"]
    return train, dev
