# One-command set-up and test. Everything installs into a repo-local .venv.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: install test docs format bench ablation ablation_rrdb degradation_prior demo_x2 pipeline strength real app screenshot notebook clean

install: $(BIN)/python
	$(BIN)/python -m pip install --upgrade pip >/dev/null
	$(BIN)/python -m pip install -e ".[all,test,docs]"
	@# the prior painter's browser test drives Debian's Chromium (Playwright cannot download its own here)
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# style (ruff format + lint), the import layers (import-linter), the docs site (strict), then the test suite
test: docs
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest --durations=15

# the docs site into build/site/ (MkDocs Material + mkdocstrings); strict: a broken link, a missing
# reference or a stale API name fails the build
docs:
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# apply the formatter and the linter's safe fixes
format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench:
	$(BIN)/python benchmarks/bench_imresize.py
	$(BIN)/python benchmarks/bench_generator.py
	$(BIN)/python benchmarks/bench_loader.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_degradations.py
	$(BIN)/python benchmarks/bench_predict.py
	$(BIN)/python benchmarks/bench_engines.py
	$(BIN)/python benchmarks/bench_pipeline.py
	$(BIN)/python benchmarks/bench_app.py
	$(BIN)/python benchmarks/bench_backbones.py
	$(BIN)/python benchmarks/bench_inference.py

ablation:
	$(BIN)/python -m sftgan_lit.experiments.prior_ablation --out outputs/ablation

# the prior ablation on SFT-RRDBNet at demo size (sft vs none vs uniform prior; docs/backbones.md)
ablation_rrdb:
	$(BIN)/python -m sftgan_lit.experiments.prior_ablation --out outputs/ablation_rrdb --no-gan --variants sft,none,sft_uniform model=sft_rrdb model.generator.num_blocks=2 model.generator.num_grow_ch=16

# continuous prior channels: SFT on [classes, degradation maps] vs classes vs none on degraded LRs, the denoise
# control, the swap test and the blind estimator (docs/priors.md)
degradation_prior:
	$(BIN)/python -m sftgan_lit.experiments.degradation_prior --out outputs/degradation_prior

# the demo recipe at x2 on SFT-RRDBNet (pixel-unshuffled input, as RealESRGAN_x2plus), with its report
demo_x2:
	$(BIN)/python train.py model=sft_rrdb scale=x2 model.generator.num_blocks=2 model.generator.num_grow_ch=16 hydra.run.dir=outputs/demo_x2

# segmenter -> priors -> SFTGAN -> predict on the context demo scenes, no external weights
pipeline:
	$(BIN)/python -m sftgan_lit.experiments.learned_prior --out outputs/pipeline

# the demo recipe's two ends interpolated at 0 .. 1: texture energy and PSNR-Y (after python train.py)
strength:
	$(BIN)/python -m sftgan_lit.experiments.texture_strength --out outputs/strength

# the demo recipe on bicubic and on Real-ESRGAN's degradations, and its report (docs/real-world.md)
real:
	$(BIN)/python train.py experiment=demo_real

# the prior painter on http://127.0.0.1:7860/ with the newest train.py export (python train.py makes one)
app:
	$(BIN)/sftgan-app

# docs/img/app.png: the prior painter in headless Chromium, a demo scene painted and run (after python train.py)
screenshot:
	$(BIN)/python scripts/app_screenshot.py --out docs/img/app.png

# re-run notebooks/demo.ipynb in place (outputs committed)
notebook:
	MPLBACKEND=module://matplotlib_inline.backend_inline $(BIN)/python -c "import nbformat; from nbclient import NotebookClient; nb = nbformat.read('notebooks/demo.ipynb', as_version=4); NotebookClient(nb, timeout=1200, kernel_name='python3').execute(); nbformat.write(nb, 'notebooks/demo.ipynb')"

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache
