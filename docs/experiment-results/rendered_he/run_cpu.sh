#!/bin/bash
# Step 19 (docs/experiments.md): step 17's one-command recipe from the default M2 on the CPU,
# with the augmentation preset "rendered" (grey crops of A and B drawn as H&E) instead of
# "stains". One torch thread; two runs side by side.
#   bash run_cpu.sh NAME SEED [PRESET]      e.g.  bash run_cpu.sh rendered_s2 2
# DATA and SPLIT default to the shared data and a split_C.csv in the working directory.
set -u
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1
DATA=${DATA:-../shared/data/dsb2018-dev}; SPLIT=${SPLIT:-split_C.csv}
name=$1; seed=$2; preset=${3:-rendered}
napari-cellseg train --data "$DATA" --split "$SPLIT" -l 4 --la 2 --frozen-layers 0 \
    --loss weighted-ce --class-weights 1 5 3 --thickness 2 --microscopes A B C --oversample C=26.045 \
    --batch-size 8 --patch-size 192 --lr 2e-3 --epochs 20 --steps-per-epoch 350 --threads 1 \
    --workers 0 --device cpu --dev-metric ap50 --dev-every 2 --quiet --augment "$preset" \
    --m2 default --seed "$seed" --out "$name"
