#!/bin/bash
# Step 19 (docs/experiments.md): step 14's continuation recipe (20 epochs x 110 steps from the
# bundled model, lr 3e-4) with the preset "rendered"; its "stains" controls are step 14's.
#   bash run_continue.sh NAME SEED [PRESET]      e.g.  bash run_continue.sh cont_rendered_s2 2
set -u
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data/dsb2018-dev}; SPLIT=${SPLIT:-split_C.csv}
name=$1; seed=$2; preset=${3:-rendered}
napari-cellseg train --data "$DATA" --split "$SPLIT" --frozen-layers 0 --class-weights 1 5 3 \
    --thickness 2 --steps-per-epoch 110 --batch-size 8 --patch-size 192 --microscopes A B C \
    --oversample C=26.045 --threads 1 --workers 0 --device cpu --dev-metric ap50 --dev-every 4 --quiet \
    --init-model default --epochs 20 --lr 3e-4 --object-diameter 0 --seed "$seed" --augment "$preset" \
    --out "$name"
