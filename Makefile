# vocalprint: staged, cached pipeline. `make` alone prints the targets, the variables and the models.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
STAMP := $(VENV)/.requirements.stamp
DEMO_DIR := data/demo
KAGGLE_DATA := /kaggle/input/birdclef-2025
## DATA_DIR     a folder in the competition layout (default: Kaggle's input when present, else the demo set)
DATA_DIR ?= $(if $(wildcard $(KAGGLE_DATA)),$(KAGGLE_DATA),$(DEMO_DIR))
## MODEL        the model to train / submit / bundle (list below)
MODEL ?= tokens-nb
## ARGS         extra CLI arguments, e.g. ARGS='--set tokens.k=2048 --set run.n_jobs=4'
ARGS ?=
## EXECUTOR     local | dask-local | dask (per-file stages on a Dask cluster)
EXECUTOR ?= local
## PERCH_DIR    a Perch v2 SavedModel folder (perch-* models)
PERCH_DIR ?=
## BUDGET_MIN   submit's time budget in minutes (the kernel's 90)
BUDGET_MIN ?= 90
## CORES        core count that submit projects its timing to
CORES ?= $(shell nproc)
## ARTIFACTS    where stages write their hashed folders
ARTIFACTS ?= artifacts
## SUBMISSION   the submission file submit writes and evaluate reads
SUBMISSION ?= submission/submission.csv
## BUNDLES      make kaggle: existing bundle folders (comma-separated); given, nothing is retrained
BUNDLES ?=
## KAGGLE_USER  make kaggle: your Kaggle user (default KAGGLE_USERNAME or ~/.kaggle/kaggle.json)
KAGGLE_USER ?=
## KAGGLE_PY    make kaggle: the kernel's CPython version
KAGGLE_PY ?= 3.11
## PYTEST_ARGS  make test: extra pytest arguments
PYTEST_ARGS ?=

export DATA_DIR KAGGLE_PY
# the checkout's code first, also in a venv made before vocalprint was installed into it
export PYTHONPATH := $(CURDIR)/src
RUN = $(VENV)/bin/python -m vocalprint
STAGE = $(RUN) $(1) --data $(DATA_DIR) --model $(MODEL) --artifacts $(ARTIFACTS) --set run.executor=$(EXECUTOR) \
	$(if $(PERCH_DIR),--set teacher.perch_dir=$(PERCH_DIR),) $(ARGS)
# the demo set is generated on first use; a user's DATA_DIR is never written to
DATA_DEP := $(if $(filter $(DEMO_DIR),$(DATA_DIR)),$(DEMO_DIR)/sample_submission.csv,)
# stages holding teacher outputs (hours at competition size): `make clean` keeps them
TEACHER_CACHE := teacher teacher-model tmixes

.PHONY: help venv demo-data plan mels tokens w2v features train teacher distill submit evaluate select notebooks bench \
	bundle kaggle kaggle-check scale test test-fast clean clean-all

help: ## list the targets, variables and models
	@echo "vocalprint - make TARGET [VARIABLE=value ...]"
	@echo; echo "targets:"
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-16s %s\n", $$1, $$2}'
	@echo; echo "variables (current value in brackets):"
	@grep -E '^## [A-Z_]+ ' $(MAKEFILE_LIST) | sed -E 's/^## //' | while read -r name text; do \
		printf "  %-16s %s [%s]\n" "$$name" "$$text" "$$($(MAKE) -s --no-print-directory print-$$name)"; done
	@echo; echo "models (MODEL=):"
	@if [ -x $(VENV)/bin/python ]; then VOCALPRINT_LOG=WARNING $(RUN) models; else echo "  (run make venv first to list them)"; fi

print-%:
	@echo '$($*)'

$(STAMP): requirements.txt pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-deps -e .
	touch $@

venv: $(STAMP) ## create .venv from requirements.txt with vocalprint installed (again when either changes)

$(DEMO_DIR)/sample_submission.csv: | $(STAMP)
	$(RUN) demo-data --out $(DEMO_DIR)

demo-data: $(STAMP) ## generate the synthetic demo competition under data/demo
	$(RUN) demo-data --out $(DEMO_DIR)

mels: $(STAMP) $(DATA_DEP) ## log-Mel frames of training audio (cached per file)
	$(call STAGE,mels)

tokens: $(STAMP) $(DATA_DEP) ## Faiss K-means codebook and a token id per frame
	$(call STAGE,tokens)

w2v: $(STAMP) $(DATA_DEP) ## Word2Vec skip-gram vectors of the tokens (no labels)
	$(call STAGE,w2v)

features: $(STAMP) $(DATA_DEP) ## pooled 5-s window features of the training clips
	$(call STAGE,features)

plan: $(STAMP) $(DATA_DEP) ## the stages MODEL would build on DATA_DIR: key, cached or not, measured or projected cost
	@$(call STAGE,plan)

train: $(STAMP) $(DATA_DEP) ## build every stage MODEL needs (cached) and fit it
	$(call STAGE,train)

teacher: $(STAMP) $(DATA_DEP) ## pretrained teacher (BirdNET; Perch with PERCH_DIR) outputs cached for all training audio
	$(call STAGE,teacher)

distill: $(STAMP) $(DATA_DEP) ## train the student CNN on teacher outputs, export float32 and int8 TFLite
	$(call STAGE,distill)

submit: $(STAMP) $(DATA_DEP) ## MODEL over the test soundscapes (training what it needs) -> SUBMISSION + timing.json
	$(call STAGE,submit) --budget-min $(BUDGET_MIN) --cores $(CORES) --out $(SUBMISSION)

evaluate: $(STAMP) ## score SUBMISSION against DATA_DIR/solution.csv -> artifacts/metrics/MODEL.json
	$(call STAGE,evaluate) --out $(SUBMISSION)

select: $(STAMP) ## best ensemble (by local AUC) of the evaluated models that fits BUDGET_MIN -> artifacts/select/selected.yaml
	$(RUN) select --data $(DATA_DIR) --artifacts $(ARTIFACTS) --budget-min $(BUDGET_MIN) $(ARGS)

## NOTEBOOK_MODELS  make notebooks: the models compared (the default and the best)
NOTEBOOK_MODELS ?= tokens-nb birdnet-zeroshot
NOTEBOOKS_OUT ?= $(ARTIFACTS)/notebooks
notebooks: $(STAMP) $(DATA_DEP) ## evaluate NOTEBOOK_MODELS on DATA_DIR, build the token chain, then execute notebooks/ -> artifacts/notebooks
	for m in $(NOTEBOOK_MODELS); do $(MAKE) --no-print-directory submit evaluate MODEL=$$m SUBMISSION=$(ARTIFACTS)/notebooks-runs/$$m.csv || exit 1; done
	$(call STAGE,features)  # notebook 02 reads the token chain (mels, tokens, w2v, features)
	$(VENV)/bin/python -m vocalprint.tools.notebooks --data $(DATA_DIR) --artifacts $(ARTIFACTS) --out $(NOTEBOOKS_OUT)

## BENCH_MODELS make bench: comma-separated models (default: the registry's bench list)
BENCH_MODELS ?=
bench: $(STAMP) $(DATA_DEP) ## time every model (1 and 2 workers), AUC, memory -> artifacts/bench/
	$(RUN) bench --data $(DATA_DIR) --artifacts $(ARTIFACTS) $(if $(BENCH_MODELS),--models $(BENCH_MODELS),) $(ARGS)

## SCALE        make scale: fractions of BirdCLEF+ 2025's size to measure at (two or more)
SCALE ?= 0.02,0.05
## SCALE_MODELS make scale: models to measure (default: every model but the students and ensembles)
SCALE_MODELS ?=
scale: $(STAMP) ## synthetic competitions at each SCALE, every model trained and submitted from empty artifacts, growth fitted, BirdCLEF size projected -> artifacts/scale/scale.json
	$(VENV)/bin/python -m vocalprint.scaling --scales $(SCALE) --out $(ARTIFACTS)/scale --data-root data \
		$(if $(SCALE_MODELS),--models $(SCALE_MODELS),) --cores 4

KAGGLE_OUT ?= $(ARTIFACTS)/kaggle
bundle: $(STAMP) $(DATA_DEP) ## MODEL as a self-contained bundle (no training data needed) -> artifacts/bundles/MODEL
	$(call STAGE,export) --out $(ARTIFACTS)/bundles/$(MODEL)

kaggle-check:
	@$(if $(BUNDLES),,$(if $(filter $(DEMO_DIR),$(DATA_DIR)),echo "make kaggle: DATA_DIR is the demo set; give DATA_DIR=<competition data> or BUNDLES=<bundle folders>" >&2; exit 2))

# with BUNDLES the kit packages those folders as they are; without, it bundles MODEL trained on DATA_DIR,
# which must not be the demo set (a demo-trained model would score nothing on Kaggle)
kaggle: $(STAMP) kaggle-check $(if $(BUNDLES),,bundle) ## wheels + bundles (BUNDLES, or MODEL on DATA_DIR) + notebook -> artifacts/kaggle
	$(VENV)/bin/python -m vocalprint.tools.kaggle build --out $(KAGGLE_OUT) \
		--bundle $(if $(BUNDLES),$(BUNDLES),$(ARTIFACTS)/bundles/$(MODEL)) --py $(KAGGLE_PY) \
		$(if $(KAGGLE_USER),--user $(KAGGLE_USER),) $(if $(filter $(DEMO_DIR),$(DATA_DIR)),,--taxonomy $(DATA_DIR))

test: $(STAMP) ## run the whole test suite (slow tests included)
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

test-fast: $(STAMP) ## the test suite without tests marked slow
	$(VENV)/bin/python -m pytest tests -m "not slow" $(PYTEST_ARGS)

clean: ## remove artifacts, submissions and the demo data, but keep the teacher's cached outputs (hours of work)
	@mkdir -p $(ARTIFACTS)
	find $(ARTIFACTS) -mindepth 1 -maxdepth 1 $(foreach s,$(TEACHER_CACHE),! -name $(s)) ! -name README.md -exec rm -rf {} +
	rm -rf $(DEMO_DIR) $(SUBMISSION) $(dir $(SUBMISSION))timing.json

clean-all: clean ## clean, and remove the teacher's cached outputs too
	rm -rf $(foreach s,$(TEACHER_CACHE),$(ARTIFACTS)/$(s))
