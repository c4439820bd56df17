#!/bin/bash
# Step 21 (docs/experiments.md): step 14's continuation recipe (20 epochs x 110 steps from the
# bundled model, lr 3e-4, preset "stains") with a soft Dice term; its controls are step 14's
# two "stains" runs, which differ only in --dice-weight (0).
#   bash run_dice.sh NAME SEED [DICE_WEIGHT]      e.g.  bash run_dice.sh dice1_s2 2 1
set -u
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data/dsb2018-dev}; SPLIT=${SPLIT:-split_C.csv}
name=$1; seed=$2; dice=${3:-1}
napari-cellseg train --data "$DATA" --split "$SPLIT" --frozen-layers 0 --class-weights 1 5 3 \
    --thickness 2 --steps-per-epoch 110 --batch-size 8 --patch-size 192 --microscopes A B C \
    --oversample C=26.045 --threads 1 --workers 0 --device cpu --dev-metric ap50 --dev-every 4 --quiet \
    --init-model default --epochs 20 --lr 3e-4 --object-diameter 0 --seed "$seed" --augment stains \
    --dice-weight "$dice" --out "$name"
