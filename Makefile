# Every target sets itself up: a fresh clone needs only python3 (>= 3.10).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check -q

.PHONY: demo test lint typecheck bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

# A stamp per extra, redone when pyproject.toml changes.
$(VENV)/.installed-%: pyproject.toml | $(BIN)/python
	$(PIP) install -e ".[$*]"
	@touch $@

demo: $(VENV)/.installed-local
	$(BIN)/python -m asyncpresign demo

test: $(VENV)/.installed-test
	$(BIN)/ruff check asyncpresign tests benchmarks examples
	$(BIN)/mypy asyncpresign
	$(BIN)/python -m pytest

bench: $(VENV)/.installed-bench
	$(BIN)/python benchmarks/bench_sign.py --markdown benchmarks/results/sign.md
	@# The transfer runs keep their files until both are over: ext4 without a journal
	@# makes new files slowly for minutes after many were deleted (bench_transfers.py).
	rm -rf .bench-files
	$(BIN)/python benchmarks/bench_transfers.py --rounds 5 --workdir .bench-files/rclone
	$(BIN)/python benchmarks/bench_transfers.py --server seaweedfs --quick --rounds 3 \
		--workdir .bench-files/seaweedfs
	$(BIN)/python benchmarks/bench_listing.py | tee benchmarks/results/listing.md
	$(BIN)/python benchmarks/bench_large.py --mib 256 --rounds 2 | tee benchmarks/results/large.md
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python benchmarks/bench_streams.py --mib 512 --rounds 3 | tee benchmarks/results/streams.md
	$(BIN)/python benchmarks/readme_tables.py
	rm -rf .bench-files

lint: $(VENV)/.installed-test
	$(BIN)/ruff check asyncpresign tests benchmarks examples

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy asyncpresign

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
