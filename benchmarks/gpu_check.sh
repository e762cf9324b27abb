#!/usr/bin/env bash
# The GPU check in one call: the throughput workload (recipe, unpacked, 4 workers on the GPU,
# packed 32 / 128 / 512 / auto), the GPU-bound overhead check and the `gpu`-marked tests, with
# results under $OUT. (The compute-free bookkeeping study is CPU work: benchmarks/bookkeeping.py.)
#
# Meant for the measurement machine (one GPU, Python 3.12 with torch, lightning and
# scikit-learn but no optuna or mlflow, no network): build the missing wheels here first with
#   bash ../shared/tools/device-wheels.sh plotly   (writes .whl/, carried to the machine; plotly: the report)
# then run, from the repository root on that machine:
#   OUT=/some/folder bash benchmarks/gpu_check.sh            # full sizes; meant to fit 8 minutes, not yet timed on a GPU
#   OUT=/tmp/dry PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh --tiny   # tiny sizes: a CPU dry run (5 min here)
# Copy $OUT/throughput.json (its `device` is the GPU's name) to benchmarks/results/ to commit it.
set -euo pipefail
OUT=${OUT:?set OUT to the folder for the results}
TINY=${1:-}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" > /dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/droptune-site .whl/*.whl
  export PYTHONPATH=/tmp/droptune-site:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
PY=${PYTHON:-python3}
log() { echo "[gpu_check $(date +%H:%M:%S)] $*" >&2; }

if [ "$TINY" = "--tiny" ]; then
  # Every step at toy sizes: checks that the script and the benchmark run end to end.
  sizes=(--quick --n-trials 2 --max-epochs 1 --packs 2,4 --workers 2)
  configs=recipe,droptune,workers_2,packed_2,packed_4,packed_auto,gpu_bound
else
  sizes=(--packs 32,128,512 --workers 4)
  configs=recipe,droptune,workers_4,packed_32,packed_128,packed_512,packed_auto,gpu_bound
fi

log "device: $($PY -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")')"
log "throughput workload ($configs)"
$PY benchmarks/throughput.py "${sizes[@]}" --configs "$configs" --out "$OUT" \
  --note "benchmarks/gpu_check.sh ${TINY:-(full)}" > "$OUT/throughput.log" 2>&1 || { tail -40 "$OUT/throughput.log"; exit 1; }
log "gpu-marked tests"
$PY -m pytest -q -m gpu tests -p no:cacheprovider > "$OUT/gpu_tests.txt" 2>&1 || true  # recorded, not fatal
tail -3 "$OUT/gpu_tests.txt" >&2
log "done: $(ls "$OUT" | tr '\n' ' ')"
