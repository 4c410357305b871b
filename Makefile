# Quitclaim developer entry points. Everything installs itself into .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit integration e2e lint format clean api-template

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

test: $(STAMP)  ## unit, integration (local AWS over HTTP) and end-to-end tests
	$(BIN)/python -m pytest tests -q -ra

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit -q

integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration -q

e2e: $(STAMP)
	$(BIN)/python -m pytest tests/e2e -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy layers/core/python functions

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

api-template: $(STAMP)  ## the API half of the SAM template: build/api/sam.yaml (+ sam.local.yaml)
	$(BIN)/python -m quitclaim.local.api_template --local

clean:
	rm -rf $(VENV) build .pytest_cache .mypy_cache .ruff_cache demo-report.json demo-report.html
