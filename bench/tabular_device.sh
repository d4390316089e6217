#!/usr/bin/env bash
# Record the tabular benchmark's table on a bare GPU machine (no Ray, no Optuna, no embedding
# model needed), time-boxed, and pack what finished into one file. Why a script: the device
# tool allows one short command and brings back only a few files; the table is resumable, so
# an unfinished recording is completed elsewhere with `bench/tabular.py --record`.
#
#   bench/tabular_device.sh OUT_DIR SECONDS [tabular.py arguments...]
#
# Run from a folder holding this repository's code, data/amazon-scientific (the raw files) and
# .devcache/ (the prepared dataset: prepare_dataset must find it and build nothing).
set -u
out=${1:?OUT_DIR}; seconds=${2:?SECONDS}; shift 2
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
mkdir -p "$out"
python3 - <<'EOF' 2>&1 | tee "$out/machine.txt"
import os, platform, torch
print("host", platform.node(), "cpus", os.cpu_count(), "python", platform.python_version(), "torch", torch.__version__)
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
start=$(date +%s)
# -k: a second SIGKILL if the recorder does not end 15 s after SIGTERM (workers are spawned)
timeout -k 15 "$seconds" python3 bench/tabular.py --record --out table --data-root data --cache-dir .devcache "$@" \
    2>&1 | tee "$out/record.log"
echo "recording: exit ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s" | tee -a "$out/record.log"
ls table/*/ | grep -c -- '-[0-9a-f]*\.json$' | sed 's/^/records: /' | tee -a "$out/record.log"
tar -czf "$out/table.tar.gz" table
ls -la "$out"
