#!/usr/bin/env bash
# Issue 13, item 4: the speed benchmarks on one CUDA GPU, in one run, each log kept.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        (default: $OUT, else ./gpu_results)
#
# Runs from the repository root with the machine's own PyTorch (src/ on PYTHONPATH, no install);
# needs h5py, safetensors, pyyaml, tqdm and matplotlib, and torch_brain for the comparisons (where
# it is missing, neuropoyo runs alone and peer.txt says so). DEVICE=cpu, STEPS=N (default 10) and
# REPLAY_S=S (seconds of recording bench-stream replays, default 20) rehearse it on a CPU machine.
#   1. the GPU's name and memory (nvidia-smi);
#   2. benchmarks/loader_throughput.py, both sizes, 8 loader workers: loader and step windows/s,
#      the loop's wait on data and the GPU's busy fraction;
#   3. benchmarks/train_throughput.py: our training step against torch_brain's, fp32 and bf16;
#   4. neuropoyo bench-stream of the Table 4 model (after one training step: latency only) on a
#      simulated recording, float32 and bfloat16.
set -euo pipefail
out=${1:-${OUT:-gpu_results}}
device=${DEVICE:-cuda}
steps=${STEPS:-10}
replay=${REPLAY_S:-20}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ "$device" = cuda ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
fi
"$python" benchmarks/loader_throughput.py --device "$device" --workers 8 --steps "$steps" 2>&1 | tee "$out/loader.txt"

peer=()
if ! "$python" -c "import torch_brain" 2>/dev/null; then
    echo "torch_brain is not importable here: neuropoyo's figures alone" | tee "$out/peer.txt"
    peer=(--no-torch-brain)
fi
"$python" benchmarks/train_throughput.py --device "$device" --steps "$steps" "${peer[@]}" 2>&1 | tee "$out/train.txt"

"$python" -m neuropoyo simulate --out "$work/sim" --animals 1 --days 1 --tasks random_target --duration-s 60 >/dev/null
"$python" -m neuropoyo train --config paper-single-session --data "$work/sim" --out "$work/run" \
    --max-steps 1 --device "$device" >/dev/null
recording=$(ls "$work"/sim/*.h5 | head -n 1)
for dtype in float32 bfloat16; do
    "$python" -m neuropoyo bench-stream --model "$work/run" --data "$recording" --duration-s "$replay" --device "$device" \
        --dtype "$dtype" "${peer[@]}" --out "$out/stream_$dtype.json" 2>&1 | tee "$out/stream_$dtype.txt"
done
