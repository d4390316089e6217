# Set-up and everyday commands. `make demo` and `make test` each build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# CPU torch 2.13.0 lies on this project's machines; elsewhere override, e.g. TORCH_SPEC=torch
TORCH_SPEC ?= torch==2.13.0
PYTEST_ARGS ?= --durations=20

export RAY_USAGE_STATS_ENABLED=0
export HF_HUB_OFFLINE=1
export TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false

.PHONY: venv browser test demo bench clean mutation

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

venv: $(VENV)/.installed

# Debian's chromium for the dashboard's headless-browser test; the test skips, saying why, without it.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
		&& apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: the dashboard browser test will be skipped"

test: venv browser
	$(PY) -m pytest $(PYTEST_ARGS)

demo: venv
	$(PY) launch.py demo

# Mutation testing, fast subset: the evaluator, the losses and the metrics against the fast tests
# (about 2 minutes on 2 cores). `nice -n 19 .venv/bin/mutmut run` alone mutates all of model/,
# datasets/processing.py and results/load.py (hours); [tool.mutmut] in pyproject.toml.
mutation: venv
	$(PY) -m pip install --quiet mutmut
	nice -n 19 $(VENV)/bin/mutmut run --max-children 2 "model.evaluate*" "model.losses*" "model.metrics*"
	$(VENV)/bin/mutmut results

bench: venv
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) .cache runs
