# Every target runs inside the project's virtual environment (.venv), made by `make setup`.
# Notebook parameters pass through as upper-case variables, e.g.
#   make data DATA_SOURCE=local DATA_DIR=../shared/data/brain_mri_yes_no CLASSES=both IMAGE_SIZE=64

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_NOTEBOOKS := 01_download 02_preprocess
NOTEBOOKS := $(DATA_NOTEBOOKS)
# NAME=VALUE pairs given on the make command line, handed to the notebooks as parameters.
NB_PARAMS := $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $v)),$(v)=$($(v))))
RUN_NOTEBOOKS := $(PY) -m gan_lib.run_notebooks

.PHONY: setup data demo test nbval-prepare clean-outputs help

help:
	@echo "make setup   create .venv and install requirements.txt and gan_lib"
	@echo "make demo    the whole pipeline on the built-in SYNTHETIC phantom data (offline)"
	@echo "make data    notebooks 01+02 (default: Kaggle); e.g. DATA_SOURCE=local DATA_DIR=... CLASSES=both"
	@echo "make test    unit tests, then the notebooks executed by nbval in small settings"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

data: $(STAMP)
	$(RUN_NOTEBOOKS) $(DATA_NOTEBOOKS) --out outputs/notebooks $(NB_PARAMS)

demo: $(STAMP)
	$(RUN_NOTEBOOKS) $(NOTEBOOKS) --params-file params/demo.yaml --out outputs/demo/notebooks $(NB_PARAMS)

# nbval cannot inject parameters: papermill writes copies with params/ci.yaml injected, nbval runs them.
nbval-prepare: $(STAMP)
	$(RUN_NOTEBOOKS) $(NOTEBOOKS) --prepare-only --params-file params/ci.yaml --out outputs/ci/notebooks

test: nbval-prepare
	$(PY) -m pytest tests outputs/ci/notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

clean-outputs:
	rm -rf outputs/notebooks outputs/demo outputs/ci
