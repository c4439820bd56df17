"""Forward-pass time of CellSegNet on the CPU for the default M2 (EfficientNet-Lite0).

For several ``l`` (with ``l_a = l``, a full U-Net, and ``l_a = l - 1``, logits
upsampled x2), at 256x256 and 1024x1024, with 1 and 2 torch threads, in the
NCHW and channels_last memory formats. Prints the median wall time of several
runs (and the CPU time, steadier on a shared machine), the convolutions'
multiply-accumulates (GMAC, independent of the machine's load), parameters
and the fp16 model size.

Run: ``python benchmarks/bench_model.py [--repeats 5] [--sizes 256 1024] [--layers 3 4 5]``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _timing import median_time


def conv_gmacs(model, size: int) -> float:
    """Multiply-accumulates of the convolutions for one (1, 3, size, size) input, in billions.

    A load-independent cost figure: the machine may be shared while timing.
    """
    import torch

    total = 0

    def count(module, inputs, output):
        nonlocal total
        kernel = module.weight[0].numel()  # in_channels / groups * kh * kw
        total += output.numel() * kernel

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.inference_mode():
        model(torch.zeros(1, 3, size, size))
    for hook in hooks:
        hook.remove()
    return total / 1e9


def main() -> None:
    import torch

    from napari_cellseg.models.m2 import load_m2
    from napari_cellseg.models.surgery import build_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--layers", type=int, nargs="+", default=[3, 4, 5])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()

    m2 = load_m2()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs visible; M2 {m2[1].arch}")
    print(
        f"{'l':>2} {'l_a':>3} {'params':>10} {'fp16 MB':>7} {'size':>5} {'GMAC':>5} {'thr':>3} "
        f"{'NCHW s':>8} {'(cpu)':>7} {'ch_last s':>9} {'(cpu)':>7}"
    )
    for transfer_layers in args.layers:
        for new_layers in (transfer_layers, transfer_layers - 1):
            if new_layers < 1:
                continue
            model = build_model(m2, transfer_layers, new_layers).eval()
            params = sum(p.numel() for p in model.parameters())
            fp16_mb = (
                sum(
                    t.numel() * (2 if t.is_floating_point() else t.element_size())
                    for t in model.state_dict().values()
                )
                / 1e6
            )
            fast = build_model(m2, transfer_layers, new_layers, channels_last=True).eval()
            for size in args.sizes:
                gmacs = conv_gmacs(model, size)
                x = torch.randn(1, 3, size, size)
                x_cl = x.contiguous(memory_format=torch.channels_last)
                for threads in args.threads:
                    torch.set_num_threads(threads)
                    with torch.inference_mode():
                        nchw = median_time(lambda m=model, v=x: m(v), args.repeats)
                        cl = median_time(lambda m=fast, v=x_cl: m(v), args.repeats)
                    print(
                        f"{transfer_layers:>2} {new_layers:>3} {params:>10,} {fp16_mb:>7.1f} {size:>5} "
                        f"{gmacs:>5.2f} {threads:>3} {nchw[0]:>8.3f} {nchw[1]:>7.3f} {cl[0]:>9.3f} {cl[1]:>7.3f}",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
