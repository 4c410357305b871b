# Quitclaim developer entry points. Everything installs itself into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# checkov pins boto3 1.35 and older botocore; it gets its own venv so the
# project's environment keeps the versions the tests run against.
CHECKOV_VERSION := 3.3.30
CHECKOV := $(VENV)/checkov/bin/checkov
CONFIG_ENV ?= default
# pytest-xdist workers for `make test` (one local stack each); TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2

.PHONY: demo test unit integration e2e lint format clean api-template layers package deploy bench soak audit

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# face_recognition is only the benchmark/test baseline. It declares `dlib`
	# (a 10-minute source build); dlib-bin provides the same module.
	$(BIN)/python -m pip install --quiet --no-deps "face_recognition==1.3.0"
	touch $(STAMP)

demo: $(STAMP)  ## the main job: real photos through the real handlers on the local stack
	$(BIN)/quitclaim demo --out .

$(CHECKOV): $(STAMP)
	test -x $(VENV)/checkov/bin/python || $(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/python -m pip install --quiet --disable-pip-version-check "checkov==$(CHECKOV_VERSION)"
	touch $(CHECKOV)

test: $(STAMP) $(CHECKOV)  ## unit, integration (local AWS over HTTP), e2e (with a load test of 300 uploads), and the offline infra checks
	# --dist loadfile: a file's tests share their module fixtures, so they stay on one worker.
	# --no-loadscope-reorder: files go out in collection order, the longest first (tests/conftest.py).
	$(BIN)/python -m pytest tests -q -ra -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=20

unit: $(STAMP) $(CHECKOV)
	$(BIN)/python -m pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration -q

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/core/python functions bench infra devstack cli

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

api-template: $(STAMP)  ## the API half of the SAM template: build/api/sam.yaml (+ sam.local.yaml)
	$(BIN)/python -m infra.api_template --local

bench: $(STAMP)  ## speed, recall and cost vs face_recognition and Rekognition: bench-report.json + table (~40 min; `python -m bench --quick` ~30 s)
	$(BIN)/python -m bench --out bench-report.json

soak: $(STAMP)  ## the load test at 20,000 uploads (long): throughput, checker verdict, counts per status; build/soak-report.json; then at 2,000 through pytest
	$(BIN)/python -m tests.load --uploads 20000
	# The load test at issue #10's 2,000 uploads (`make test` runs 300).
	QC_LOAD_UPLOADS=2000 $(BIN)/python -m pytest tests/e2e/test_load.py -q -p no:cacheprovider --timeout 3600
	# The fairness run drained to the end: A's 1,000 all decided, the law holding for both tenants.
	QC_FAIRNESS_BULK_UPLOADS=1000 QC_FAIRNESS_DRAIN=1 $(BIN)/python -m pytest tests/e2e/test_fairness.py -q -s -p no:cacheprovider --timeout 3600
	# A backlog of 500 photos scanned, stopped at half and resumed (docs/import.md; `make test` scans 60).
	QC_BACKLOG_PHOTOS=500 $(BIN)/python -m pytest tests/e2e/test_backlog_scan.py -q -p no:cacheprovider --timeout 3600

audit: $(STAMP)  ## known vulnerabilities in the installed packages: pip-audit where PyPI's JSON API answers, else the offline safety-db snapshot (its date printed)
	$(BIN)/python infra/dependency_audit.py

layers: $(STAMP)  ## Lambda layers for arm64 + python3.13 (build/layers/{core,face}); fails over 250 MB
	$(BIN)/python infra/build_layers.py

package: layers api-template  ## the deployable template build/api/sam.yaml (then: sam deploy)
	@echo "deployable template: build/api/sam.yaml  ->  sam deploy [--config-env eu-west-1]"

deploy: package  ## sam deploy (samconfig.toml; CONFIG_ENV=eu-west-1 for Ireland), or print it
	@if command -v sam >/dev/null 2>&1; then \
		sam deploy --config-env $(CONFIG_ENV); \
	else \
		echo "sam CLI not found; install it (pip install aws-sam-cli) and run:"; \
		echo "  sam deploy --config-env $(CONFIG_ENV)"; \
	fi

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache demo-report.json demo-report.html bench-report.json
