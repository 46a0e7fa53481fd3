# vocalprint: staged, cached pipeline. `make` alone prints this help.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
STAMP := $(VENV)/.requirements.stamp
DEMO_DIR := data/demo
KAGGLE_DATA := /kaggle/input/birdclef-2025
DATA_DIR ?= $(if $(wildcard $(KAGGLE_DATA)),$(KAGGLE_DATA),$(DEMO_DIR))
MODEL ?= tokens-nb
ARGS ?=
EXECUTOR ?= local
PERCH_DIR ?=
BUDGET_MIN ?= 90
CORES ?= $(shell nproc)
ARTIFACTS ?= artifacts
SUBMISSION ?= submission/submission.csv
PYTEST_ARGS ?=
EXECUTOR ?= local
PERCH_DIR ?=

export PYTHONPATH := $(CURDIR)/src
export DATA_DIR
RUN = $(VENV)/bin/python -m vocalprint
STAGE = $(RUN) $(1) --data $(DATA_DIR) --model $(MODEL) --artifacts $(ARTIFACTS) --set run.executor=$(EXECUTOR) \
	$(if $(PERCH_DIR),--set teacher.perch_dir=$(PERCH_DIR),) $(ARGS)
# the demo set is generated on first use; a user's DATA_DIR is never written to
DATA_DEP := $(if $(filter $(DEMO_DIR),$(DATA_DIR)),$(DEMO_DIR)/sample_submission.csv,)

.PHONY: help venv demo-data mels tokens w2v features train teacher distill submit evaluate select notebooks bench bundle kaggle test test-fast clean

help: ## list the targets
	@echo "vocalprint - make TARGET [DATA_DIR=...] [MODEL=...] [ARGS='--set tokens.k=2048']"
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | awk -F'\t' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	touch $@

venv: $(STAMP) ## create .venv from requirements.txt (again when it changes)

$(DEMO_DIR)/sample_submission.csv: | $(STAMP)
	$(RUN) demo-data --out $(DEMO_DIR)

demo-data: $(STAMP) ## generate the synthetic demo competition under data/demo
	$(RUN) demo-data --out $(DEMO_DIR)

mels: $(STAMP) $(DATA_DEP) ## log-Mel frames of training audio (cached per file)
	$(call STAGE,mels)

tokens: mels ## Faiss K-means codebook and a token id per frame
	$(call STAGE,tokens)

w2v: tokens ## Word2Vec skip-gram vectors of the tokens (no labels)
	$(call STAGE,w2v)

features: w2v ## pooled 5-s window features of the training clips
	$(call STAGE,features)

train: features ## fit the head of MODEL with grouped out-of-fold validation
	$(call STAGE,train)

teacher: features ## pretrained teacher (BirdNET; Perch with PERCH_DIR) outputs cached for all training audio
	$(call STAGE,teacher)

distill: teacher ## train the student CNN on teacher outputs, export float32 and int8 TFLite
	$(call STAGE,distill)

submit: train ## MODEL over the test soundscapes -> submission/submission.csv + timing.json
	$(call STAGE,submit) --budget-min $(BUDGET_MIN) --cores $(CORES) --out $(SUBMISSION)

evaluate: $(STAMP) ## score submission.csv against DATA_DIR/solution.csv -> artifacts/metrics/MODEL.json
	$(call STAGE,evaluate) --out $(SUBMISSION)

select: $(STAMP) ## best ensemble (by local AUC) of the evaluated models that fits BUDGET_MIN -> artifacts/select/selected.yaml
	$(RUN) select --data $(DATA_DIR) --artifacts $(ARTIFACTS) --budget-min $(BUDGET_MIN) $(ARGS)

NOTEBOOKS_OUT ?= $(ARTIFACTS)/notebooks
notebooks: $(STAMP) $(DATA_DEP) ## evaluate stsg-linear + melstats-linear on DATA_DIR, then execute notebooks/ -> artifacts/notebooks
	$(MAKE) submit MODEL=stsg-linear
	$(MAKE) evaluate MODEL=stsg-linear
	$(MAKE) submit MODEL=melstats-linear
	$(MAKE) evaluate MODEL=melstats-linear
	$(VENV)/bin/python -m vocalprint.notebooks --data $(DATA_DIR) --artifacts $(ARTIFACTS) --out $(NOTEBOOKS_OUT)

BENCH_MODELS ?=
bench: $(STAMP) $(DATA_DEP) ## time every model (1 and 2 workers), AUC, memory -> artifacts/bench/
	$(RUN) bench --data $(DATA_DIR) --artifacts $(ARTIFACTS) $(if $(BENCH_MODELS),--models $(BENCH_MODELS),) $(ARGS)

KAGGLE_PY ?= 3.11
KAGGLE_USER ?= your-kaggle-username
KAGGLE_OUT ?= $(ARTIFACTS)/kaggle
BUNDLES ?= $(ARTIFACTS)/bundles/$(MODEL)
export KAGGLE_PY

bundle: $(STAMP) $(DATA_DEP) ## MODEL as a self-contained bundle (no training data needed) -> artifacts/bundles/MODEL
	$(call STAGE,export) --out $(ARTIFACTS)/bundles/$(MODEL)

kaggle: bundle ## wheels for CPython KAGGLE_PY + BUNDLES + notebook -> artifacts/kaggle (see its README.md)
	$(VENV)/bin/python -m vocalprint.kaggle build --out $(KAGGLE_OUT) --bundle $(BUNDLES) --py $(KAGGLE_PY) --user $(KAGGLE_USER)

test: $(STAMP) ## run the whole test suite (slow tests included)
	$(VENV)/bin/python -m pytest tests $(PYTEST_ARGS)

test-fast: $(STAMP) ## the test suite without tests marked slow
	$(VENV)/bin/python -m pytest tests -m "not slow" $(PYTEST_ARGS)

clean: ## remove artifacts, submissions and the demo data (keeps .venv)
	rm -rf $(ARTIFACTS)/* $(DEMO_DIR) submission/*.csv submission/*.json
