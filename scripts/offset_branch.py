"""An instance output trained from M2: each cell pixel's offset to its cell's centre, measured.

Steps 11-17 (docs/experiments.md) left one lever unmeasured: an instance
representation learnt from the start, instead of markers found in
``P(interior)``. Here a branch beside the 3-class head (``centre_branch.build_branch``
with two output channels) regresses, for each cell pixel, the vector to its
cell's centre (the deepest point of the cell's distance transform), in units
of ``OFFSET_UNIT`` px, with an L1 loss over cell pixels. Two touching nuclei
have offsets that point apart at their contact, whether or not the image shows
a boundary there: the cue Cellpose's flows and Panoptic-DeepLab's offsets use.

- ``train``: network and branch from the default M2 (``l=4, l_a=2, l_f=0``),
  weighted cross-entropy 1/5/3 plus ``--offset-weight`` times the offset loss,
  with step 15's one-command recipe (20 epochs x 350 steps, lr 2e-3 cosine,
  8 crops of 192x192, A+B+C with C over-sampled, ``stains``). ``--offset-weight 0``
  is the control: the same network, crops and schedule, the branch unused.
  The last epoch is kept.
- ``score``: held-out C images as ``segment`` runs them (nucleus size estimated,
  watershed parameters of ``--model``'s config). Markers compared: the network's
  own (``P(interior)`` peaks) against *vote* markers: every foreground pixel
  votes at the centre its offset points to, peaks of the vote count within
  ``0.2 d`` become centres, the pixels whose vote lands within ``--near`` x d of
  a centre seed it, and the network's watershed floods the rest.

Run::

    python scripts/offset_branch.py train --data ../shared/data/dsb2018-dev \\
        --split split_C.csv --seed 1 --out offset_s1.safetensors
    python scripts/offset_branch.py train ... --offset-weight 0 --out control_s1.safetensors
    python scripts/offset_branch.py score --data ../shared/data/dsb2018-dev \\
        --split split_C.csv --model MODEL_DIR --weights offset_s1.safetensors

``MODEL_DIR`` supplies the architecture and watershed parameters (a model
trained with the same ``l``, ``l_a``, e.g. step 17's Lite0 run, tuned on dev C).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # scripts are not a package
from centre_branch import build_branch

OFFSET_UNIT = 10.0  # px: offsets of nuclei (radius ~10 px at the training scale) near 1


def offset_targets(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 ``(2, H, W)`` offsets (dy, dx) / OFFSET_UNIT to each cell's deepest point; bool cell mask."""
    import cv2
    from scipy import ndimage as ndi

    offsets = np.zeros((2, *instances.shape), np.float32)
    rows, cols = np.indices(instances.shape, dtype=np.float32)
    for cell, box in enumerate(ndi.find_objects(instances), 1):
        if box is None:
            continue
        inside = instances[box] == cell
        padded = np.pad(inside, 1).view(np.uint8)
        distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        cy, cx = np.unravel_index(int(np.argmax(distance)), distance.shape)
        cy, cx = cy + box[0].start, cx + box[1].start
        offsets[0][box][inside] = (cy - rows[box][inside]) / OFFSET_UNIT
        offsets[1][box][inside] = (cx - cols[box][inside]) / OFFSET_UNIT
    return offsets, instances > 0


def vote_markers(offsets: np.ndarray, mask: np.ndarray, diameter: float, min_votes: float,
                 near: float) -> np.ndarray:  # fmt: skip
    """int32 markers from ``offsets`` (image px, ``(2, H, W)``) of the pixels in ``mask``.

    Each pixel votes at ``position + offset``; local maxima of the votes within
    ``0.2 * diameter`` that gather at least ``min_votes`` x a disc of ``diameter``
    become centres; a pixel whose vote lands within ``near * diameter`` of its
    nearest centre gets that centre's label.
    """
    import cv2
    from scipy.spatial import cKDTree
    from skimage.feature import peak_local_max

    height, width = mask.shape
    ys, xs = np.nonzero(mask)
    markers = np.zeros(mask.shape, np.int32)
    if ys.size == 0:
        return markers
    vy = np.clip(np.rint(ys + offsets[0, ys, xs]), 0, height - 1).astype(np.intp)
    vx = np.clip(np.rint(xs + offsets[1, ys, xs]), 0, width - 1).astype(np.intp)
    votes = np.bincount(vy * width + vx, minlength=height * width).reshape(height, width).astype(np.float32)
    radius = max(2, round(0.2 * diameter))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)).astype(np.float32)
    gathered = cv2.filter2D(votes, -1, disc, borderType=cv2.BORDER_CONSTANT)
    area = np.pi * diameter**2 / 4
    centres = peak_local_max(
        gathered, min_distance=radius, threshold_abs=min_votes * area, exclude_border=False
    )
    if len(centres) == 0:
        return markers
    distance, nearest = cKDTree(centres).query(np.stack([vy, vx], 1))
    close = distance <= near * diameter
    markers[ys[close], xs[close]] = nearest[close] + 1
    return markers


def train(args) -> int:
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    from napari_cellseg.data.normalize import standardize
    from napari_cellseg.data.targets import instances_to_targets
    from napari_cellseg.training.config import TrainConfig
    from napari_cellseg.training.distributed import DistributedContext
    from napari_cellseg.training.losses import combine_terms
    from napari_cellseg.training.setup import build_run, lr_factor

    config = TrainConfig(
        data_dir=args.data, split_path=args.split, out_dir=args.scratch, transfer_layers=4, new_layers=2,
        frozen_layers=0, microscopes=("A", "B", "C"), sample_weights={"C": 26.045}, target_thickness=2,
        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=8, patch_size=192,
        lr=2e-3, seed=args.seed, num_threads=args.threads, num_workers=0, device="cpu",
        augment_preset="stains",
    )  # fmt: skip
    run = build_run(config, DistributedContext(0, 1, 0))
    net, crops = run.model, run.crops
    torch.manual_seed(args.seed)
    branch, forward = build_branch(net, out_channels=2)
    params = list(net.parameters()) + list(branch.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total = config.epochs * config.steps_per_epoch
    warmup = round(config.warmup_fraction * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, "cosine", warmup))

    def crop(index: int):  # the crop CropDataset.sample(index) gives, with the offset targets
        rng = np.random.default_rng([config.seed, index])
        image_id = crops.ids[crops._pick(rng)]
        image, labels, are_instances = crops.cache.get(image_id)
        if not are_instances:
            raise SystemExit(f"{image_id}: offsets need instance masks; this image has class targets only")
        image, labels = crops.augmenter(image, labels, rng)
        classes = instances_to_targets(labels, thickness=config.target_thickness)
        return (standardize(image, crops.normalization), classes, *offset_targets(labels))

    net.train()
    branch.train()
    started, ce_losses, offset_losses = time.perf_counter(), [], []
    batch, per_epoch = config.batch_size, config.steps_per_epoch
    for step in range(total):
        images, classes, offsets, cells = zip(*(crop(step * batch + i) for i in range(batch)))
        x = torch.from_numpy(np.stack(images)).contiguous(memory_format=torch.channels_last)
        logits, predicted = forward(x)
        cells = torch.from_numpy(np.stack(cells))[:, None].expand(-1, 2, -1, -1)
        error = F.l1_loss(predicted, torch.from_numpy(np.stack(offsets)), reduction="none")
        offset_loss = error[cells].mean() if cells.any() else error.sum() * 0
        ce = combine_terms(run.loss_fn.terms(logits, torch.from_numpy(np.stack(classes).astype(np.int64))))
        loss = ce + args.offset_weight * offset_loss if args.offset_weight else ce
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        ce_losses.append(ce.item())
        offset_losses.append(offset_loss.item())
        if (step + 1) % per_epoch == 0 or step + 1 == total:
            print(f"step {step + 1}/{total} ce {np.mean(ce_losses[-per_epoch:]):.4f} "
                  f"offset {np.mean(offset_losses[-per_epoch:]):.4f} {time.perf_counter() - started:.0f} s",
                  flush=True)  # fmt: skip
    tensors = {f"net.{k}": v.contiguous() for k, v in net.state_dict().items()}
    tensors.update({f"branch.{k}": v.contiguous() for k, v in branch.state_dict().items()})
    metadata = {"offset_weight": str(args.offset_weight), "steps": str(total), "seed": str(args.seed)}
    save_file(tensors, args.out, metadata=metadata)
    print(f"saved {args.out} ({total} steps, {time.perf_counter() - started:.0f} s)")
    return 0


def score(args) -> int:
    import dataclasses

    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file

    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.inference import watershed as ws
    from napari_cellseg.inference.runtime import resolve_model
    from napari_cellseg.inference.segment import segment_image, watershed_params
    from napari_cellseg.metrics import image_metrics, pool_metrics
    from napari_cellseg.training.holdout import holdout_ids

    net, config = resolve_model(args.model, device="cpu")
    net = net.float()
    branch, forward = build_branch(net, out_channels=2)
    tensors = load_file(args.weights)
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    branch.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("branch.")})
    net.eval()
    branch.eval()

    class OffsetAsClasses(torch.nn.Module):
        """Offset channel ``axis`` as ``sigmoid`` in channel 0 of a 3-class softmax, so
        ``segment_image`` tiles and rescales it like probabilities."""

        input_multiple = net.input_multiple

        def __init__(self, axis: int):
            super().__init__()
            self.axis = axis

        def forward(self, x):
            offset = forward(x.float())[1][:, self.axis : self.axis + 1]
            return torch.cat([F.logsigmoid(offset), F.logsigmoid(-offset), torch.full_like(offset, -30.0)], 1)

    class ClassesOnly(torch.nn.Module):
        input_multiple = net.input_multiple

        def forward(self, x):
            return forward(x.float())[0]

    class_net = ClassesOnly().eval()
    offset_nets = [OffsetAsClasses(axis).eval() for axis in (0, 1)]
    dataset = CellDataset.open(args.data)
    params = watershed_params(config)
    if args.min_size is not None:
        params = dataclasses.replace(params, min_size=args.min_size)
    images = []
    with torch.no_grad():
        for image_id, _group in holdout_ids(args.split, dataset, args.subset, args.microscope):
            image = dataset.load_image(image_id)
            result = segment_image(class_net, config, image, params)
            diameter = result.diameter or config.object_diameter
            offsets = []
            for offset_net in offset_nets:
                p = segment_image(offset_net, config, image, diameter=diameter).probabilities[0]
                p = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
                # back to image px: the network's px are 1 / scale_factor image px
                offsets.append(np.log(p / (1 - p)) * OFFSET_UNIT / result.scale_factor)
            images.append((dataset.load_reference_instances(image_id), result.probabilities,
                           np.stack(offsets).astype(np.float32), diameter))  # fmt: skip
    print(f"{len(images)} {args.subset} {args.microscope} images, nucleus size estimated; "
          f"{args.weights}\n")  # fmt: skip

    def pooled(segment, *options):
        metrics = pool_metrics([image_metrics(gt, segment(p, o, d, *options)) for gt, p, o, d in images])
        return metrics.ap[0], metrics.dsb_score

    def own_markers(probabilities, _offsets, _diameter, watershed):
        return ws.instances_from_probabilities(probabilities, watershed)

    def vote_seeded(probabilities, offsets, diameter, min_votes, near):
        mask = ws.foreground_mask(probabilities, params)
        markers = vote_markers(offsets, mask, diameter, min_votes, near)
        labels = ws.watershed_from_markers(
            ws.elevation_from_probabilities(probabilities, params), markers, mask
        )
        return ws.finalize_labels(labels, params.min_size)

    rows = [("own markers, the model's parameters", *pooled(own_markers, params))]
    own = []
    for threshold, height, smoothing in itertools.product((0.2, 0.3, 0.4, 0.5), (0.1, 0.2, 0.3), (1.0, 2.0)):
        tuned = dataclasses.replace(params, interior_threshold=threshold, peak_height=height,
                                    marker_smoothing=smoothing)  # fmt: skip
        own.append((*pooled(own_markers, tuned), threshold, height, smoothing))
    best = max(own)
    rows.append((f"own markers, best of 24 (threshold {best[2]}, peak {best[3]}, smoothing {best[4]})",
                 *best[:2]))  # fmt: skip
    votes = []
    for min_votes, near in itertools.product((0.05, 0.1, 0.2, 0.3), (0.15, 0.25, 0.4, 1.0)):
        votes.append((*pooled(vote_seeded, min_votes, near), min_votes, near))
        print(f"votes {min_votes} near {near}: AP@0.5 {votes[-1][0]:.3f} DSB {votes[-1][1]:.3f}", flush=True)
    best = max(votes)
    rows.append((f"vote markers, best of 16 (min votes {best[2]}, near {best[3]})", *best[:2]))
    print("\n| markers | AP@0.5 | DSB score |\n|---|---|---|")
    for name, ap, dsb in rows:
        print(f"| {name} | {ap:.3f} | {dsb:.3f} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    trainer, scorer = commands.add_parser("train"), commands.add_parser("score")
    for sub in (trainer, scorer):
        sub.add_argument("--data", required=True)
        sub.add_argument("--split", required=True)
    trainer.add_argument("--out", required=True, help="weights file (.safetensors)")
    trainer.add_argument("--offset-weight", type=float, default=1.0, help="0: the control")
    trainer.add_argument("--epochs", type=int, default=20)
    trainer.add_argument("--steps-per-epoch", type=int, default=350)
    trainer.add_argument("--seed", type=int, default=1)
    trainer.add_argument("--threads", type=int, default=1)
    trainer.add_argument("--scratch", default="offset_scratch", help="TrainConfig.out_dir (unused)")
    scorer.add_argument("--weights", required=True, help="network and branch weights from train")
    scorer.add_argument("--model", required=True, help="a model directory of the same l, l_a")
    scorer.add_argument("--subset", default="dev")
    scorer.add_argument("--microscope", default="C")
    scorer.add_argument("--min-size", type=int, default=None)
    args = parser.parse_args()
    return train(args) if args.command == "train" else score(args)


if __name__ == "__main__":
    sys.exit(main())
