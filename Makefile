# Every target runs inside the project's virtual environment (.venv), made by `make setup`.
# Notebook parameters pass through as upper-case variables, e.g.
#   make data DATA_SOURCE=local DATA_DIR=../shared/data/brain_mri_yes_no CLASSES=both IMAGE_SIZE=64

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_NOTEBOOKS := 01_download 02_preprocess
REPORT_NOTEBOOKS := 05_analyze 06_evaluate
NOTEBOOKS := $(DATA_NOTEBOOKS) 03_build_models 04_train $(REPORT_NOTEBOOKS)
# NAME=VALUE pairs given on the make command line, handed to the notebooks as parameters: each pair
# single-quoted for the shell, and its text taken as typed ($(value)), so no value is ever run by
# make or the shell. They are also kept out of the recipes' environment, where make would expand them.
MAKE_ONLY := RUN DRY_RUN NOTEBOOK_OUT N OUT LABEL UPSCALE
# `make data` keeps the executed notebooks beside the dataset, `make train` in the run folder
# (gan_lib.scripts.run_notebooks); NOTEBOOK_OUT=<folder> puts them there instead.
OUT_NOTEBOOKS = $(if $(NOTEBOOK_OUT),--out $(call quote,$(value NOTEBOOK_OUT)))
CLI_NAMES := $(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $v)),$(v)))
quote = '$(subst ','\'',$(1))'
NB_PARAMS := $(foreach v,$(filter-out $(MAKE_ONLY),$(CLI_NAMES)),$(call quote,$(v)=$(value $(v))))
unexport $(CLI_NAMES)
RUN_NOTEBOOKS := $(PY) -m gan_lib.scripts.run_notebooks $(if $(DRY_RUN),--dry-run)

.PHONY: setup data train report generate bench quality demo test test-fast nbval-prepare notebook-cells results clean-outputs help

help:
	@echo "make setup   create .venv and install requirements.txt and gan_lib"
	@echo "make demo    the whole pipeline on the built-in SYNTHETIC phantom data (offline)"
	@echo "make data    notebooks 01+02 (default: Kaggle); e.g. DATA_SOURCE=local DATA_DIR=... CLASSES=both [CLASS_MAP=... TEST_FOLDER=...]"
	@echo "make train   notebook 04 (the report's schedule, the default preset: gan_lib.config.DEFAULT_PRESET); PRESET=report: the report's GAN as it was; e.g. EPOCHS=2 RUN_NAME=x"
	@echo "            STRATEGY=mirrored (every GPU; LOGICAL_DEVICES=2 splits a CPU) | multiworker (TF_CONFIG) | tpu"
	@echo "make report  notebooks 05+06 on a finished run: RUN=<run_name> (executed copies go into the run folder)"
	@echo "make generate RUN=<run_name> [N=500 OUT=folder LABEL=yes|no|<class folder> SEED=0 UPSCALE=256 WHICH_GENERATOR=best]  PNGs marked synthetic, images.csv"
	@echo "make bench   the report's train_on_batch loop vs gan_lib's step (JSON in outputs/bench/)"
	@echo "make quality every training preset on the real tumour images, evaluated (outputs/quality/);"
	@echo "             e.g. DATA_DIR=../shared/data/brain_mri_yes_no [STEPS=6000 IMAGE_SIZE=64] (every preset in turn)"
	@echo "            DRY_RUN=1 with data/train/report/demo: print each notebook's parameters, run nothing"
	@echo "make test    unit tests, the simulated-Colab runs, then the notebooks executed by nbval in small settings"
	@echo "make test-fast  the tests not marked slow (no training, no processes, no notebooks): for the edit loop"
	@echo "make notebook-cells  write the Colab bootstrap cell, the parameters' comments and docs/settings.md (gan_lib/scripts/notebook_cells.py)"
	@echo "make results  write results/README.md and the README's headline table from the records' JSON"

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

data: $(STAMP)
	$(RUN_NOTEBOOKS) $(DATA_NOTEBOOKS) $(OUT_NOTEBOOKS) $(NB_PARAMS)

train: $(STAMP)
	$(RUN_NOTEBOOKS) 04_train $(OUT_NOTEBOOKS) $(NB_PARAMS)

# The executed notebooks are kept in the run folder, next to metrics.json.
report: $(STAMP)
	$(RUN_NOTEBOOKS) $(REPORT_NOTEBOOKS) --report $(call quote,$(value RUN)) $(NB_PARAMS)

generate: $(STAMP)
	@test -n "$(RUN)" || { echo "usage: make generate RUN=<run_name or folder> [N=500] [OUT=folder] [LABEL=yes|no|<class folder>] [SEED=0] [UPSCALE=256] [WHICH_GENERATOR=best]" >&2; exit 2; }
	$(PY) -m gan_lib generate --run $(call quote,$(value RUN)) --n $(call quote,$(or $(value N),500)) \
		--out $(call quote,$(or $(value OUT),outputs/generated/$(value RUN))) $(if $(LABEL),--label $(call quote,$(value LABEL))) \
		$(if $(SEED),--seed $(call quote,$(value SEED))) $(if $(UPSCALE),--upscale $(call quote,$(value UPSCALE))) \
		$(if $(WHICH_GENERATOR),--generator $(call quote,$(value WHICH_GENERATOR)))

bench: $(STAMP)
	$(PY) -m gan_lib.scripts.bench

quality: $(STAMP)
	$(PY) -m gan_lib.scripts.quality $(if $(DATA_DIR),--data-dir $(call quote,$(value DATA_DIR))) \
		$(if $(STEPS),--steps $(call quote,$(value STEPS))) $(if $(IMAGE_SIZE),--image-size $(call quote,$(value IMAGE_SIZE)))

demo: $(STAMP)
	$(RUN_NOTEBOOKS) $(NOTEBOOKS) --params-file params/demo.yaml --out outputs/demo/notebooks $(NB_PARAMS)

# nbval cannot inject parameters: papermill writes copies with params/ci.yaml injected, nbval runs them.
nbval-prepare: $(STAMP)
	rm -rf outputs/ci/runs
	$(RUN_NOTEBOOKS) $(NOTEBOOKS) --prepare-only --params-file params/ci.yaml --out outputs/ci/notebooks

# One pytest run on two workers: each test file on one (its module fixtures made once), the longest
# files first, and nbval's notebooks together on one, in order on a kernel each, as each reads what
# the one before it wrote (tests/conftest.py).
test: nbval-prepare
	$(PY) -m pytest outputs/ci/notebooks tests --nbval-lax --nbval-current-env -p no:cacheprovider \
		-n 2 --dist loadfile --no-loadscope-reorder --durations=20

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow" -p no:cacheprovider -q

notebook-cells: $(STAMP)
	$(PY) -m gan_lib.scripts.notebook_cells

results: $(STAMP)
	$(PY) -m gan_lib.scripts.results

clean-outputs:
	rm -rf outputs/notebooks outputs/demo outputs/ci
