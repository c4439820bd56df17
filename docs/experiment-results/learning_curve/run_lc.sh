#!/bin/bash
# Learning curve (experiments.md step 24): from M2, l=4 l_a=2, A+B plus k of the 42 train C
# images (C kept at the same share of the crops), 20 epochs x 110 steps, one thread.
#   bash run_lc.sh K [SUFFIX]      (split_kK[SUFFIX].csv from make_splits.py, e.g. _s1)
set -u
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data/dsb2018-dev}
k=$1; suffix=${2:-}
over=()
if [ "$k" -gt 0 ]; then over=(--oversample "C=$(python3 -c "print(round(1094/$k, 3))")"); fi
napari-cellseg train --data "$DATA" --split "split_k$k$suffix.csv" --out "lc_k$k$suffix" \
    --transfer-layers 4 --new-layers 2 --frozen-layers 0 --loss weighted-ce --class-weights 1 5 3 \
    --thickness 2 --epochs 20 --steps-per-epoch 110 --batch-size 8 --lr 2e-3 --patch-size 192 \
    --microscopes A B C "${over[@]}" --augment stains --seed 0 --threads 1 --workers 0 --device cpu \
    --dev-metric ap50 --dev-every 4 --quiet
