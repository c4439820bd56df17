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
from centre_branch import build_branch, own_marker_rows, scoring_networks

OFFSET_UNIT = 10.0  # px: offsets of nuclei (radius ~10 px at the training scale) near 1
FLOW = (40, 0.3)  # end_points' iterations and step for the flow markers


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


def end_points(offsets: np.ndarray, mask: np.ndarray, iterations: int = 1, step: float = 1.0):
    """Where the pixels of ``mask`` end when moved ``iterations`` times by ``step`` x their offset.

    One iteration of step 1 is the plain vote (Panoptic-DeepLab); more, smaller
    steps follow the offset field to where it vanishes (Cellpose's flows), which
    gathers a cell's votes more tightly. Returns ``(ys, xs, end_ys, end_xs)``.
    """
    from scipy import ndimage as ndi

    ys, xs = np.nonzero(mask)
    end_y, end_x = ys.astype(np.float32), xs.astype(np.float32)
    for _ in range(iterations):
        dy = ndi.map_coordinates(offsets[0], [end_y, end_x], order=1, mode="nearest")
        dx = ndi.map_coordinates(offsets[1], [end_y, end_x], order=1, mode="nearest")
        end_y = np.clip(end_y + step * dy, 0, mask.shape[0] - 1)
        end_x = np.clip(end_x + step * dx, 0, mask.shape[1] - 1)
    return ys, xs, end_y, end_x


def markers_from_end_points(ends, shape, diameter: float, min_votes: float, near: float,
                            min_distance: float = 0.2) -> np.ndarray:  # fmt: skip
    """int32 markers: centres where the end points gather, and the pixels that end near them.

    Local maxima (at least ``min_distance * diameter`` apart) of the end points
    counted within ``0.2 * diameter`` that gather at least ``min_votes`` x the area
    of a disc of ``diameter`` become centres; a pixel whose end point lies within
    ``near * diameter`` of its nearest centre gets that centre's label.
    """
    import cv2
    from scipy.spatial import cKDTree
    from skimage.feature import peak_local_max

    ys, xs, end_y, end_x = ends
    height, width = shape
    markers = np.zeros(shape, np.int32)
    if ys.size == 0:
        return markers
    cells = np.rint(end_y).astype(np.intp) * width + np.rint(end_x).astype(np.intp)
    votes = np.bincount(cells, minlength=height * width).reshape(shape).astype(np.float32)
    radius = max(2, round(0.2 * diameter))
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)).astype(np.float32)
    gathered = cv2.filter2D(votes, -1, disc, borderType=cv2.BORDER_CONSTANT)
    area = np.pi * diameter**2 / 4
    centres = peak_local_max(
        gathered, min_distance=max(1, round(min_distance * diameter)), threshold_abs=min_votes * area,
        exclude_border=False,
    )  # fmt: skip
    if len(centres) == 0:
        return markers
    distance, nearest = cKDTree(centres).query(np.stack([end_y, end_x], 1))
    close = distance <= near * diameter
    markers[ys[close], xs[close]] = nearest[close] + 1
    return markers


def vote_markers(offsets: np.ndarray, mask: np.ndarray, diameter: float, min_votes: float, near: float,
                 iterations: int = 1, step: float = 1.0, min_distance: float = 0.2) -> np.ndarray:  # fmt: skip
    """int32 markers from ``offsets`` (image px, ``(2, H, W)``) of the pixels in ``mask``.

    :func:`end_points`, then :func:`markers_from_end_points`.
    """
    ends = end_points(offsets, mask, iterations, step)
    return markers_from_end_points(ends, mask.shape, diameter, min_votes, near, min_distance)


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

    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.inference import watershed as ws
    from napari_cellseg.inference.segment import segment_image, watershed_params
    from napari_cellseg.metrics import image_metrics, pool_metrics
    from napari_cellseg.training.holdout import holdout_ids

    config, class_net, offset_nets = scoring_networks(args.model, args.weights, channels=2)
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

    for index, (_gt, probabilities, offsets, _diameter) in enumerate(images):  # end points once per image
        mask = ws.foreground_mask(probabilities, params)
        images[index] += (mask, {key: end_points(offsets, mask, *key) for key in ((1, 1.0), FLOW)})

    def pooled(segment, *options):
        metrics = pool_metrics([image_metrics(image[0], segment(image, *options)) for image in images])
        return metrics.ap[0], metrics.dsb_score

    def own_markers(image, watershed):
        return ws.instances_from_probabilities(image[1], watershed)

    def end_point_seeded(image, key, min_votes, near, min_distance):
        _gt, probabilities, _offsets, diameter, mask, ends = image
        markers = markers_from_end_points(ends[key], mask.shape, diameter, min_votes, near, min_distance)
        elevation = ws.elevation_from_probabilities(probabilities, params)
        return ws.finalize_labels(ws.watershed_from_markers(elevation, markers, mask), params.min_size)

    rows = own_marker_rows(pooled, own_markers, params)
    grids = {
        "vote markers (one step)": ((1, 1.0), (0.1, 0.2, 0.3), (0.15, 0.25), (0.2,)),
        f"flow markers ({FLOW[0]} steps of {FLOW[1]})": (FLOW, (0.1, 0.2, 0.3), (0.25, 0.4), (0.3, 0.4)),
    }
    for name, (key, *grid) in grids.items():
        scores = []
        for option in itertools.product(*grid):
            scores.append((*pooled(end_point_seeded, key, *option), *option))
            print(f"{name}, min votes {option[0]}, near {option[1]}, apart {option[2]}: "
                  f"AP@0.5 {scores[-1][0]:.3f} DSB {scores[-1][1]:.3f}", flush=True)  # fmt: skip
        best = max(scores)
        rows.append((f"{name}, best of {len(scores)} (min votes {best[2]}, near {best[3]}, apart {best[4]})",
                     *best[:2]))  # fmt: skip
    print("\n| markers | AP@0.5 | DSB score |\n|---|---|---|")
    for name, ap, dsb in rows:
        print(f"| {name} | {ap:.3f} | {dsb:.3f} |")
    apart = merged_pairs_apart(images, params)
    print(f"\nTouching pairs of the expert's cells that the own markers merge: {apart.size}. Distance "
          f"between the median flow end points of the two cells, in diameters: median {np.median(apart):.2f}, "
          f"share >= 0.3: {np.mean(apart >= 0.3):.2f}")  # fmt: skip
    return 0


def merged_pairs_apart(images, params) -> np.ndarray:
    """For each touching pair of expert cells merged by the own markers: how far apart the flow takes them.

    The distance, in nucleus diameters, between the median flow end points of
    the two cells' foreground pixels: near 0 when the offsets see one nucleus.
    """
    from napari_cellseg.inference.watershed import instances_from_probabilities
    from napari_cellseg.instance_errors import touching_pairs

    apart = []
    for gt, probabilities, _offsets, diameter, mask, ends in images:
        labels = instances_from_probabilities(probabilities, params)
        ys, xs, end_y, end_x = ends[FLOW]
        where = np.full(gt.shape, -1, np.intp)
        where[ys, xs] = np.arange(ys.size)
        for a, b in touching_pairs(gt):
            home = [np.bincount(labels[gt == cell]).argmax() for cell in (a, b)]
            if home[0] == 0 or home[0] != home[1]:
                continue
            centres = []
            for cell in (a, b):
                index = where[(gt == cell) & mask]
                centres.append(
                    (np.median(end_y[index]), np.median(end_x[index])) if index.size else (np.nan,) * 2
                )
            apart.append(np.hypot(*np.subtract(*centres)) / diameter)
    return np.array(apart)


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
