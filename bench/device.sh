#!/usr/bin/env bash
# What a lent GPU machine is for here, each in one device call: the GPU rows of the benchmarks
# (issue 23 item 4: `check`) and the dose-responses' runs, many sharing the GPU (issue 21 item 7:
# `dose`). Why a script: the device tool allows one short command, sends the working tree only
# (64 MiB, no ../shared, no virtual environment; that machine has torch but no Ray or Optuna) and
# brings back a few files. Every step is time-boxed; the dose-response is resumable, so whatever
# the box cuts is finished later, here or there.
#
# Here, once per data change:   bench/device.sh pack configs/dose-scientific.yaml configs/dose-beauty.yaml
#   writes .devcarry/ (git-ignored): each config's raw files from ../shared/data and its prepared
#   dataset (xz; Beauty's is about 29 MB), so the machine there builds nothing and needs no
#   embedding model (the cache key hashes the raw files' content, so the copies match it).
# There (the device tool's command, carry [".devcarry"]):
#   bash bench/device.sh check "$OUT"          # eval time per 10k users, the cost table, packing 1-8
#   bash bench/device.sh dose "$OUT" SECONDS WORKERS NAME:CONFIG [NAME:CONFIG ...]
#   e.g. bash bench/device.sh dose "$OUT" 480 14 dose-beauty:configs/dose-beauty.yaml
#   `check` writes check.md (the three tables) and check.log. For `dose`, each NAME is continued
#   from docs/studies/NAME when the tree holds it, else started; the new run files come back in
#   $OUT/runs.tar.gz, with the log and the machine's description.
# Back here:   tar -xzf FILES_AT/runs.tar.gz && python launch.py dose --name NAME --report-only \
#                  --set tune.storage_path=docs/studies
# Every run is the same config as on CPU (train.device auto picks CUDA there), so the runs of both
# machines pair by seed; the device used is in each run's log, not in its identity.
# DEVICE=cpu bash bench/device.sh check OUT runs `check` here, on CPU and small, to try the script.
set -u
mode=${1:?pack, check or dose}; shift

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

[ "$mode" = check ] || [ "$mode" = dose ] || { echo "mode: got '$mode'; allowed: pack, check, dose" >&2; exit 2; }
out=${1:?OUT}; shift
export PYTHONUNBUFFERED=1 RAY_USAGE_STATS_ENABLED=0 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
py=${PYTHON:-python3}
mkdir -p "$out" .cache/icc-tune
"$py" -c 'import os, platform, torch; c = torch.cuda.is_available()
print("host", platform.node(), "cpus", os.cpu_count(), "python", platform.python_version(), "torch", torch.__version__)
print("cuda", c, torch.cuda.get_device_name(0) if c else "-")' 2>&1 | tee "$out/machine.txt"
if [ ! -d ../shared/data ]; then mkdir -p ../shared && cp -r .devcarry/data ../shared/data; fi
for archive in .devcarry/cache/*.tar.xz; do
    [ -f "$archive" ] && xz -dc "$archive" | tar -C .cache/icc-tune -xf -
done
data=(--data-root ../shared/data --cache-dir .cache/icc-tune)

if [ "$mode" = check ]; then
    device=${DEVICE:-cuda}
    step() {   # one time-boxed measurement: its table into check.md, its stderr into check.log
        local box=$1; shift
        echo "== $* (at most $box s)" | tee -a "$out/check.log"
        timeout -k 15 "$box" "$py" "$@" "${data[@]}" >> "$out/check.md" 2>> "$out/check.log"
        echo "exit $?" | tee -a "$out/check.log"
    }
    if [ "$device" = cuda ]; then
        step 120 bench/eval_time.py --datasets amazon-scientific,amazon-beauty --device cuda
        step 150 bench/cost.py --datasets amazon-scientific,amazon-beauty --variants plain,llmesr --device cuda
        step 240 bench/packing.py --backend processes --device cuda --trials-per-gpu 1,2,4,8
    else
        step 120 bench/eval_time.py --datasets amazon-scientific --train-epochs 0 --repeats 1 --device cpu
        step 240 bench/packing.py --backend processes --device cpu --trials-per-gpu 1,2 --trials 2 --epochs 1 \
            --max-len 10 --set model.hidden_size=16
    fi
    ls -la "$out"
    exit 0
fi

seconds=${1:?SECONDS}; workers=${2:?WORKERS}; shift 2
[ $# -gt 0 ] || { echo "dose: name at least one NAME:CONFIG" >&2; exit 2; }
log="$out/dose.log"
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
