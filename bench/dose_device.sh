#!/usr/bin/env bash
# Run (or continue) dose-responses on a lent GPU machine in one call, many training runs sharing
# the GPU (issue 21 item 7). Why a script: the device tool allows one short command, sends the
# working tree only (64 MiB, no ../shared, no virtual environment) and brings back a few files.
# The dose-response is resumable, so whatever the time box cuts is finished later, here or there.
#
# Here, once per data change:   bench/dose_device.sh pack configs/dose-scientific.yaml configs/dose-beauty.yaml
#   writes .devcarry/ (git-ignored): each config's raw files from ../shared/data and its prepared
#   dataset (xz; Beauty's is about 29 MB), so the machine there builds nothing and needs no
#   embedding model (the cache key hashes the raw files' content, so the copies match it).
# There (the device tool's command, carry [".devcarry"]):
#   bash bench/dose_device.sh run "$OUT" SECONDS WORKERS NAME:CONFIG [NAME:CONFIG ...]
#   e.g. bash bench/dose_device.sh run "$OUT" 480 14 dose-beauty:configs/dose-beauty.yaml
#   Each NAME is continued from docs/studies/NAME when the tree holds it, else started; the new
#   run files come back in $OUT/runs.tar.gz, with the log and the machine's description.
# Back here:   tar -xzf FILES_AT/runs.tar.gz && python launch.py dose --name NAME --report-only \
#                  --set tune.storage_path=docs/studies
# Every run is the same config as on CPU (train.device auto picks CUDA there), so the runs of both
# machines pair by seed; the device used is in each run's log, not in its identity.
set -u
mode=${1:?pack or run}; shift

if [ "$mode" = pack ]; then
    [ $# -gt 0 ] || { echo "pack: name the dose configs, e.g. configs/dose-beauty.yaml" >&2; exit 2; }
    py=${PYTHON:-.venv/bin/python}
    rm -rf .devcarry && mkdir -p .devcarry/data .devcarry/cache
    for config in "$@"; do
        read -r name folder < <("$py" launch.py prepare --config "$config" --json | tail -1 |
            "$py" -c 'import json, sys; d = json.load(sys.stdin); print(d["dataset"], d["path"])') || exit 2
        cp -r "../shared/data/$name" .devcarry/data/ && chmod -R u+w ".devcarry/data/$name" || exit 2
        tar -C "$(dirname "$folder")" -cf - "$(basename "$folder")" | xz -T0 -6 > ".devcarry/cache/$name.tar.xz"
    done
    du -sh .devcarry
    exit 0
fi

[ "$mode" = run ] || { echo "mode: got '$mode'; allowed: pack, run" >&2; exit 2; }
out=${1:?OUT}; seconds=${2:?SECONDS}; workers=${3:?WORKERS}; shift 3
[ $# -gt 0 ] || { echo "run: name at least one NAME:CONFIG" >&2; exit 2; }
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
py=${PYTHON:-python3}
mkdir -p "$out" .cache/icc-tune
log="$out/dose.log"
"$py" - <<'EOF' 2>&1 | tee "$out/machine.txt"
import os, platform, torch
print("host", platform.node(), "cpus", os.cpu_count(), "python", platform.python_version(), "torch", torch.__version__)
print("cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "-")
EOF
if [ ! -d ../shared/data ]; then mkdir -p ../shared && cp -r .devcarry/data ../shared/data; fi
for archive in .devcarry/cache/*.tar.xz; do xz -dc "$archive" | tar -C .cache/icc-tune -xf -; done
touch "$out/.start"
start=$(date +%s)
for job in "$@"; do
    name=${job%%:*}; config=${job#*:}
    left=$(( seconds - ($(date +%s) - start) ))
    [ "$left" -gt 60 ] || { echo "$name: no time left" | tee -a "$log"; continue; }
    resume=(); [ -d "docs/studies/$name" ] && resume=(--resume)
    echo "== $name ($config), ${left} s left, $workers workers" | tee -a "$log"
    # -k: a second SIGKILL if the driver does not end 15 s after SIGTERM (its workers follow it)
    timeout -k 15 "$left" "$py" launch.py dose --config "$config" --name "$name" "${resume[@]}" \
        --set tune.storage_path=docs/studies --set "dose.workers=$workers" 2>&1 | tee -a "$log"
    echo "$name: exit ${PIPESTATUS[0]} after $(( $(date +%s) - start )) s" | tee -a "$log"
done
find docs/studies -name 'seed-*.json' -newer "$out/.start" > "$out/new-runs.txt"
echo "new runs: $(wc -l < "$out/new-runs.txt")" | tee -a "$log"
tar -czf "$out/runs.tar.gz" -T "$out/new-runs.txt" docs/studies/*/study_config.json
rm -f "$out/.start"
ls -la "$out"
