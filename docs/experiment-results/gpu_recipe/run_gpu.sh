#!/bin/bash
# Step 15 (docs/experiments.md): three runs from M2 side by side on one GPU.
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH=${EXTRA_PYTHONPATH:-}$PWD/src PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLCONFIGDIR=/tmp/mpl OMP_NUM_THREADS=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT" /tmp/runs
PY=${PY:-python3}
EPOCHS=${EPOCHS:-20}; STEPS=${STEPS:-350}; WORKERS=${WORKERS:-4}; DEADLINE=${DEADLINE:-480}; DEVICE=${DEVICE:-cuda}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc
  $PY -c "import sys,torch,timm,numpy,skimage,scipy;print(sys.version.split()[0],torch.__version__,timm.__version__,numpy.__version__,skimage.__version__,scipy.__version__,torch.cuda.is_available())"; } > "$OUT/env.txt" 2>&1
COMMON="--data .gpu/data --split .gpu/split_C.csv -l 4 --la 2 --frozen-layers 0 --loss weighted-ce --class-weights 1 5 3 --thickness 2 --microscopes A B C --oversample C=26.045 --batch-size 8 --patch-size 192 --lr 2e-3 --epochs $EPOCHS --steps-per-epoch $STEPS --threads 1 --workers $WORKERS --device $DEVICE --dev-metric ap50 --dev-every 2 --quiet"
run() {
  name=$1; shift
  echo "$name: train $COMMON $*" >> "$OUT/env.txt"
  timeout -s INT "$DEADLINE" $PY -m napari_cellseg.cli train $COMMON "$@" --out /tmp/runs/$name > "$OUT/$name.log" 2>&1
  echo "$name rc $? at ${SECONDS}s" >> "$OUT/env.txt"
}
run honly_s1 --config .gpu/haematoxylin_only_config.json --seed 1 &
run honly_s2 --config .gpu/haematoxylin_only_config.json --seed 2 &
run stains_s1 --augment stains --seed 1 &
sleep 60; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv >> "$OUT/env.txt" 2>&1; uptime >> "$OUT/env.txt"
wait
for n in honly_s1 honly_s2 stains_s1; do
  tar -C /tmp/runs -czf "$OUT/$n.tgz" --exclude="*/last/training_state.safetensors" $n
done
ls -la /tmp/runs/* >> "$OUT/env.txt"
