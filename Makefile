# Two entry points for a fresh machine: `make run` (app on 127.0.0.1) and `make test` (everything).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8501

.PHONY: install run test lint bench bench-multihost bench-multihost-predict bench-multihost-faults browser-deps pdf-fonts clean

$(BIN)/python:
	@command -v $(PY) >/dev/null 2>&1 || { echo "python3.11 not found; set PY=/path/to/python3.11"; exit 2; }
	$(PY) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/streamlit run app.py --server.headless true --server.address 127.0.0.1 --server.port $(PORT) --browser.gatherUsageStats false

browser-deps:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

# fonts of the PDF report (report/pdf.py FALLBACKS): DejaVu Sans, and fallbacks for the scripts it lacks: Chinese and
# Japanese (Droid Sans Fallback), Korean (Nanum Gothic), Indic, Thai and more (Noto Sans), emoji (Noto Color Emoji)
PDF_FONT_PACKAGES := fonts-dejavu-core fonts-droid-fallback fonts-nanum fonts-noto-core fonts-noto-color-emoji
PDF_FONTS := /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf /usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf \
	/usr/share/fonts/truetype/nanum/NanumGothic.ttf /usr/share/fonts/truetype/noto/NotoSansDevanagari-Regular.ttf \
	/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
pdf-fonts:
	@{ ls $(PDF_FONTS) && command -v pdftoppm; } >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(PDF_FONT_PACKAGES) poppler-utils >/dev/null; }

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: install browser-deps pdf-fonts
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

bench: install browser-deps
	$(BIN)/python -m benchmarks.model_error
	$(BIN)/python -m benchmarks.megatron_fidelity
	$(BIN)/python -m benchmarks.sweep_speed
	$(BIN)/python -m benchmarks.train_page_rerun
	$(BIN)/python -m benchmarks.serving_trtllm
	$(BIN)/python -m benchmarks.compression_quality
	$(BIN)/python -m benchmarks.decision_speed
	$(BIN)/python -m benchmarks.calibration_pdf_speed --in-process
	$(BIN)/python -m benchmarks.decide_page_rerun
	$(BIN)/python -m benchmarks.browser_rerun
	$(BIN)/python -m benchmarks.calibration_quick --slow-dtype bf16 --markdown
	$(BIN)/python -m benchmarks.serving_cpu_check --repeats 3
	$(BIN)/python -m benchmarks.serving_moe_eff
	$(BIN)/python -m benchmarks.moe_fp8_training

# as root (network namespaces and tc): calibration across two test hosts against the rate imposed on their links
bench-multihost: install
	$(BIN)/python -m benchmarks.multihost

# as root: the simulator's step time for DDP, parameter-server and asynchronous training across test hosts, from
# their calibration, against the measured (docs/calibration.md, "Prediction against measurement across hosts")
bench-multihost-predict: install
	$(BIN)/python -m benchmarks.multihost_predict

# as root: a worker killed, a link cut and a straggler across two test hosts; what calibration records, how soon
# each node exits, and --resume completing the run
bench-multihost-faults: install
	$(BIN)/python -m benchmarks.multihost_faults

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# hostile-input properties (scenarios, grids, CLI arguments, links, profiles) with many more generated cases
# (fixed seed, no database); 10,000 each takes about 30 minutes on 2 cores
FUZZ_EXAMPLES ?= 10000
.PHONY: fuzz
fuzz: install
	MODELFOLIO_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_hostile.py tests/test_profile_hostile.py -m fuzz -p no:cacheprovider --hypothesis-show-statistics
