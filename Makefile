# The install path pins torch 2.13.0 (a CPU build); pyproject.toml keeps ranges.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0

.PHONY: install test test-slow lint format demo clean

$(BIN)/strokeseg: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev,all]" $(TORCH)
	touch $@

install: $(BIN)/strokeseg

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: lint
	@$(BIN)/pytest -q; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	exit $$status

test-slow: install
	$(BIN)/pytest -q -m slow

format: install
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

demo: install
	$(BIN)/strokeseg demo --out demo

clean:
	rm -rf $(VENV) build *.egg-info
