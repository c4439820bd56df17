"""Do the network's features know one marker per nucleus? A centre-map branch, measured.

Step 11 showed that the expert's markers would lift the bundled network's own
watershed from 0.684 to 0.866 AP@0.5 on dev C. This script asks whether a
*centre* output (each cell pixel's distance to the cell's edge over the cell's
deepest distance: 1 at the centre, falling to 0 at the edge) gives such
markers. A branch (a copy of the last decoder block, one more ConvBNReLU and a
1x1 convolution to one logit, at the decoder's stride) is added beside the
bundled network's 3-class head and trained with binary cross-entropy on the
centre targets:

- ``train --mode frozen``: the bundled network frozen, only the branch learns
  (what its features already hold);
- ``train --mode joint``: the network and the branch learn together,
  weighted cross-entropy 1/5/3 plus ``--centre-weight`` times the centre loss,
  with step 11's recipe (its thickness-2 control is the run to compare with).

Crops come from the training stream of ``napari-cellseg train`` (seed, A+B+C
with C over-sampled, 8 crops of 192x192, default augmentation). ``score`` runs
the network on held-out C images as ``segment`` does (nucleus size estimated)
and compares watershed markers: the network's own (``P(interior)`` peaks, the
bundled parameters and a small grid) against components of the centre map
above a threshold, split at its peaks. Weights are saved as safetensors. Run::

    python scripts/centre_branch.py train --data ../shared/data/dsb2018-dev \\
        --split runs/split_C.csv --mode frozen --steps 1500 --out runs/centre_frozen.safetensors
    python scripts/centre_branch.py train ... --mode joint --epochs 32 --out runs/centre_joint.safetensors
    python scripts/centre_branch.py score --data ../shared/data/dsb2018-dev \\
        --split runs/split_C.csv --weights runs/centre_frozen.safetensors
    python scripts/centre_branch.py score ... --model runs/th2   # a model's own markers only
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
import time

import numpy as np

BRANCH_CHANNELS = 32


def centre_targets(instances: np.ndarray) -> np.ndarray:
    """float32: each cell pixel's distance to the cell's edge over the cell's deepest; 0 outside."""
    import cv2
    from scipy import ndimage as ndi

    centre = np.zeros(instances.shape, np.float32)
    for cell, box in enumerate(ndi.find_objects(instances), 1):
        if box is None:
            continue
        inside = instances[box] == cell
        padded = np.pad(inside, 1).view(np.uint8)
        distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
        centre[box][inside] = distance[inside] / distance.max()
    return centre


def centre_markers(centre: np.ndarray, mask: np.ndarray, threshold: float, height: float,
                   smoothing: float = 0.0, min_marker_size: int = 4) -> np.ndarray:  # fmt: skip
    """int32 markers: components of ``centre >= threshold`` in ``mask``, split at peaks ``height`` high.

    The package's interior markers, with the centre map in place of ``P(interior)``.
    """
    from napari_cellseg.inference.watershed import WatershedParams, markers_from_probabilities

    as_interior = np.zeros((3, *centre.shape), np.float32)
    as_interior[2] = centre
    params = WatershedParams(
        interior_threshold=threshold, marker_smoothing=smoothing,
        min_marker_size=min_marker_size, peak_height=height,
    )  # fmt: skip
    return markers_from_probabilities(as_interior, params, mask=mask)


def segment_with_centre(probabilities, centre, params, threshold, height, smoothing=0.0):
    """The watershed of ``params`` on ``probabilities``, seeded by :func:`centre_markers`."""
    from napari_cellseg.inference import watershed as ws

    mask = ws.foreground_mask(probabilities, params)
    markers = centre_markers(centre, mask, threshold, height, smoothing, params.min_marker_size)
    labels = ws.watershed_from_markers(
        ws.elevation_from_probabilities(probabilities, params), markers, mask,
        compactness=params.compactness, keep_unmarked=params.keep_unmarked,
    )  # fmt: skip
    return ws.finalize_labels(labels, params.min_size)


def build_branch(net, out_channels: int = 1):
    """A branch beside a ``CellSegNet``'s head, and ``forward(x) -> (logits, branch_output)``.

    One output channel is the centre map; ``scripts/offset_branch.py`` uses two.
    """
    import copy

    import torch.nn.functional as F
    from torch import nn

    from napari_cellseg.models.decoder import ConvBNReLU

    last = net.decoder.blocks[-1]
    branch = nn.ModuleDict({
        "block": copy.deepcopy(last),  # starts from the trained block: the same features
        "extra": ConvBNReLU(last.conv2[0].out_channels, BRANCH_CHANNELS),
        "head": nn.Conv2d(BRANCH_CHANNELS, out_channels, 1),
    })  # fmt: skip
    level = net.decoder.levels[-1]

    def forward(x):
        height, width = x.shape[-2:]
        x = net._pad(x)
        features, y = [], x
        for stage in net.encoder:
            y = stage(y)
            features.append(y)
        skips = [x, *features[:-1]]
        deep = features[-1]
        for block, block_level in list(zip(net.decoder.blocks, net.decoder.levels))[:-1]:
            deep = block(deep, skips[block_level] if block.skip_channels else None)
        logits = net.head(last(deep, skips[level]))
        centre = branch["head"](branch["extra"](branch["block"](deep, skips[level])))
        size = x.shape[-2:]
        return tuple(
            F.interpolate(t, size=size, mode="bilinear", align_corners=False)[..., :height, :width]
            for t in (logits, centre)
        )

    return branch, forward


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

    frozen = args.mode == "frozen"
    steps_per_epoch = 110
    epochs = 1 if frozen else args.epochs
    config = TrainConfig(
        data_dir=args.data, split_path=args.split, out_dir=args.scratch, init_model="default",
        microscopes=["A", "B", "C"], sample_weights={"C": 26.045}, target_thickness=2,
        epochs=epochs, steps_per_epoch=args.steps if frozen else steps_per_epoch, batch_size=8,
        patch_size=192, lr=2e-3 if frozen else 1e-3, seed=args.seed, num_threads=args.threads,
        num_workers=0, device="cpu", object_diameter=0.0,
    )  # fmt: skip
    run = build_run(config, DistributedContext(0, 1, 0))
    net, crops = run.model, run.crops
    torch.manual_seed(args.seed)
    branch, forward = build_branch(net)
    if frozen:
        net.requires_grad_(False)
    params = [p for p in net.parameters() if p.requires_grad] + list(branch.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total = config.epochs * config.steps_per_epoch
    warmup = round(config.warmup_fraction * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total, "cosine", warmup))

    def crop(index: int):  # the crop CropDataset.sample(index) gives, with both targets
        rng = np.random.default_rng([config.seed, index])
        image_id = crops.ids[crops._pick(rng)]
        image, labels, are_instances = crops.cache.get(image_id)
        if not are_instances:
            raise SystemExit(
                f"{image_id}: centre targets need instance masks; this image has class targets only"
            )
        image, labels = crops.augmenter(image, labels, rng)
        classes = instances_to_targets(labels, thickness=config.target_thickness)
        return standardize(image, crops.normalization), classes, centre_targets(labels)

    net.train(not frozen)
    branch.train()
    started, ce_losses, centre_losses = time.perf_counter(), [], []
    batch = config.batch_size
    for step in range(total):
        images, classes, centres = zip(*(crop(step * batch + i) for i in range(batch)))
        x = torch.from_numpy(np.stack(images)).contiguous(memory_format=torch.channels_last)
        logits, centre = forward(x)
        centre_loss = F.binary_cross_entropy_with_logits(centre, torch.from_numpy(np.stack(centres))[:, None])
        loss = centre_loss
        if not frozen:
            targets = torch.from_numpy(np.stack(classes).astype(np.int64))
            ce = combine_terms(run.loss_fn.terms(logits, targets))
            loss = ce + args.centre_weight * centre_loss
            ce_losses.append(ce.item())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        centre_losses.append(centre_loss.item())
        if (step + 1) % steps_per_epoch == 0 or step + 1 == total:
            ce_text = f" ce {np.mean(ce_losses[-steps_per_epoch:]):.4f}" if ce_losses else ""
            print(f"step {step + 1}/{total}{ce_text} centre {np.mean(centre_losses[-steps_per_epoch:]):.4f} "
                  f"{time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
    tensors = {f"net.{k}": v.contiguous() for k, v in net.state_dict().items()}
    tensors.update({f"branch.{k}": v.contiguous() for k, v in branch.state_dict().items()})
    save_file(tensors, args.out, metadata={"mode": args.mode, "steps": str(total), "seed": str(args.seed)})
    print(f"saved {args.out} ({args.mode}, {total} steps, {time.perf_counter() - started:.0f} s)")
    return 0


def scoring_networks(model, weights, channels: int):
    """``(config, class_net, branch_nets)`` of ``model`` with the branch of ``weights`` (or untrained).

    Each of ``branch_nets`` (one per branch channel) passes its channel, through a
    sigmoid, as class 0 of a 3-class softmax, so ``segment_image`` tiles and
    rescales it like probabilities; ``class_net`` is the network's own head.
    All in float32 and eval mode.
    """
    import torch
    import torch.nn.functional as F
    from safetensors.torch import load_file

    from napari_cellseg.inference.runtime import resolve_model

    net, config = resolve_model(model, device="cpu")
    net = net.float()
    branch, forward = build_branch(net, out_channels=channels)
    if weights:
        tensors = load_file(weights)
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
        branch.load_state_dict({k[7:]: v for k, v in tensors.items() if k.startswith("branch.")})
    net.eval()
    branch.eval()

    class Output(torch.nn.Module):
        input_multiple = net.input_multiple

        def __init__(self, channel: int | None):
            super().__init__()
            self.channel = channel

        def forward(self, x):
            logits, extra = forward(x.float())
            if self.channel is None:
                return logits
            value = extra[:, self.channel : self.channel + 1]
            return torch.cat([F.logsigmoid(value), F.logsigmoid(-value), torch.full_like(value, -30.0)], 1)

    return config, Output(None).eval(), [Output(channel).eval() for channel in range(channels)]


def own_marker_rows(pooled, own_markers, params) -> list[tuple[str, float, float]]:
    """Table rows ``(name, AP@0.5, DSB)`` of the network's own markers.

    With ``params``, and the best AP@0.5 of 24 marker settings (interior threshold,
    peak height, smoothing); ``pooled(own_markers, watershed)`` scores one setting.
    """
    rows = [("own markers, the model's parameters", *pooled(own_markers, params))]
    own = []
    for threshold, height, smoothing in itertools.product((0.2, 0.3, 0.4, 0.5), (0.1, 0.2, 0.3), (1.0, 2.0)):
        tuned = dataclasses.replace(params, interior_threshold=threshold, peak_height=height,
                                    marker_smoothing=smoothing)  # fmt: skip
        own.append((*pooled(own_markers, tuned), threshold, height, smoothing))
    best = max(own)
    name = f"own markers, best of 24 (threshold {best[2]}, peak {best[3]}, smoothing {best[4]})"
    return [*rows, (name, *best[:2])]


def score(args) -> int:
    import torch

    from napari_cellseg.data.dataset import CellDataset
    from napari_cellseg.inference import watershed as ws
    from napari_cellseg.inference.segment import segment_image, watershed_params
    from napari_cellseg.metrics import image_metrics, pool_metrics
    from napari_cellseg.training.holdout import holdout_ids

    config, class_net, (centre_net,) = scoring_networks(args.model, args.weights, channels=1)
    dataset = CellDataset.open(args.data)
    params = watershed_params(config)
    images = []
    with torch.no_grad():
        for image_id, _group in holdout_ids(args.split, dataset, args.subset, args.microscope):
            image = dataset.load_image(image_id)
            result = segment_image(class_net, config, image)
            diameter = result.diameter or config.object_diameter  # the same scale for the centre map
            centre = None
            if args.weights:
                centre = segment_image(centre_net, config, image, diameter=diameter).probabilities[0]
            images.append((dataset.load_reference_instances(image_id), result.probabilities, centre))
    print(f"{len(images)} {args.subset} {args.microscope} images, nucleus size estimated\n")

    def pooled(segment, *options):
        metrics = pool_metrics([image_metrics(gt, segment(p, c, *options)) for gt, p, c in images])
        return metrics.ap[0], metrics.dsb_score

    def own_markers(probabilities, _centre, watershed):
        return ws.instances_from_probabilities(probabilities, watershed)

    def centre_seeded(probabilities, centre, threshold, height, smoothing):
        return segment_with_centre(probabilities, centre, params, threshold, height, smoothing)

    rows = own_marker_rows(pooled, own_markers, params)
    if args.weights:
        options = itertools.product((0.2, 0.3, 0.4, 0.5), (0.0, 0.1, 0.2, 0.3), (0.0, 1.0))
        best = max((*pooled(centre_seeded, *option), *option) for option in options)
        name = f"centre markers, best of 32 (threshold {best[2]}, peak {best[3]}, smoothing {best[4]})"
        rows.append((name, *best[:2]))
    print("| markers | AP@0.5 | DSB score |\n|---|---|---|")
    for name, ap, dsb in rows:
        print(f"| {name} | {ap:.3f} | {dsb:.3f} |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("train", "score"):
        sub = commands.add_parser(name)
        sub.add_argument("--data", required=True)
        sub.add_argument("--split", required=True)
    trainer = commands.choices["train"]
    trainer.add_argument("--mode", choices=("frozen", "joint"), required=True)
    trainer.add_argument("--out", required=True, help="weights file (.safetensors)")
    trainer.add_argument("--steps", type=int, default=1500, help="frozen mode: optimizer steps")
    trainer.add_argument("--epochs", type=int, default=32, help="joint mode: epochs of 110 steps")
    trainer.add_argument(
        "--centre-weight", type=float, default=1.0, help="joint mode: weight of the centre loss"
    )
    trainer.add_argument("--seed", type=int, default=2)
    trainer.add_argument("--threads", type=int, default=2)
    trainer.add_argument(
        "--scratch", default="centre_branch_run", help="out_dir of the training config (unused)"
    )
    scorer = commands.choices["score"]
    scorer.add_argument("--weights", help="centre branch weights from train (none: own markers only)")
    scorer.add_argument("--model", default=None, help="the network without --weights (default: bundled)")
    scorer.add_argument("--subset", default="dev")
    scorer.add_argument("--microscope", default="C")
    args = parser.parse_args()
    return train(args) if args.command == "train" else score(args)


if __name__ == "__main__":
    sys.exit(main())
