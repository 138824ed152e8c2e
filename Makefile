# Cartridge: `make play` and `make test` set up everything they need, idempotently.
#
#   make play    Debian packages, .venv (onnxruntime, ale-py), release build, default model,
#                then play Breakout (a window where there is a display, one headless episode
#                where there is none).
#   make test    the same set-up plus test tools (Xvfb, onnx, OpenCV), `make lint` (cargo fmt
#                --check, clippy -D warnings), then the whole suite.
#   make train   build `train` (installs torch 2.11.0 into .venv and Open MPI first).
#   make bench   criterion benchmarks of the runtime, and `train ppo --bench`.
#   make gpu-smoke  on a GPU machine: train's CUDA benchmarks and save/resume checks
#                (scripts/gpu-smoke.sh; docs/GPU.md).
#   make bench-compare  `train ... --bench` against CleanRL's DQN and PPO scripts on one pinned
#                core, alternating (scripts/bench-compare.sh; clones CleanRL and builds its
#                venv under ~/.cache/cartridge; docs/results/bench-compare.md).
#   make play-aarch64  `play` cross-built for aarch64 (64-bit Raspberry Pi OS / Debian arm64) into
#                target/aarch64-unknown-linux-gnu/release/play, then run under qemu with the same
#                GAME, MODEL and PLAY_ARGS as `make play` (scripts/aarch64.sh; docs/AARCH64.md).
#   make eval    the README's evaluation protocol for MODEL on GAME with `play` itself: 30 full games with
#                NoopReset starts, sticky actions off (seed 1), then p = 0.25 (seed 2); prints
#                play's two JSON summary lines (the model cards' models/<game>.eval.jsonl).

SHELL := /bin/bash
.DEFAULT_GOAL := play

VENV       := .venv
PYTHON     ?= python3
APT_PKGS   := cmake clang libclang-dev zlib1g-dev pkg-config
TEST_PKGS  := xvfb x11-apps imagemagick
# Open MPI for `mpirun ... train ppo` (train's `mpi` feature links it; the tests run mpirun).
TRAIN_PKGS := libopenmpi-dev openmpi-bin
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
RELEASE    := target/release
GAME       ?= breakout
# A trained model ships as models/<game>.onnx; until then a random-init one is generated.
MODEL      ?= $(if $(wildcard models/$(GAME).onnx),models/$(GAME).onnx,target/models/$(GAME)-random.onnx)
PLAY_ARGS  ?=
# torch-sys builds against the torch of .venv: its python must come first on PATH.
TORCH_ENV  := PATH="$(CURDIR)/$(VENV)/bin:$$PATH" VIRTUAL_ENV="$(CURDIR)/$(VENV)" LIBTORCH_USE_PYTORCH=1

.PHONY: play play-aarch64 play-aarch64-build aarch64-deps test lint bench bench-compare train gpu-smoke eval deps test-deps train-deps venv build clean-models

# --- set-up ------------------------------------------------------------------------------

deps:
	@missing=$$(for p in $(APT_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

train-deps: deps
	@missing=$$(for p in $(TRAIN_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

test-deps: deps train-deps
	@missing=$$(for p in $(TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $$missing; \
	fi

$(VENV)/.stamp: requirements.txt
	@[ -x $(VENV)/bin/python ] || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements.txt
	@touch $@

# SB3 (a test reference) needs torch: the pinned one of requirements-train.txt comes first.
$(VENV)/.stamp-test: $(VENV)/.stamp $(VENV)/.stamp-train requirements-test.txt
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-test.txt
	@touch $@

$(VENV)/.stamp-train: $(VENV)/.stamp requirements-train.txt
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-train.txt
	@touch $@

venv: $(VENV)/.stamp

build: deps
	cargo build --release --locked -p cartridge-infer -p cartridge-export

target/models/%-random.onnx: | build $(VENV)/.stamp
	@mkdir -p target/models
	@info=$$($(RELEASE)/play --rom $* --rom-info) && \
	actions=$$(echo "$$info" | sed -n 's/.*"actions":"\([0-9,]*\)".*/\1/p') && \
	md5=$$(echo "$$info" | sed -n 's/.*"md5":"\([0-9a-f]*\)".*/\1/p') && \
	$(RELEASE)/export --init random --algo ppo --game $* --actions $$actions --rom-md5 $$md5 --seed 1 -o $@

# --- the two commands --------------------------------------------------------------------

play: build $(VENV)/.stamp
	@$(MAKE) --no-print-directory $(MODEL)
	$(RELEASE)/play $(MODEL) --rom $(GAME) $(PLAY_ARGS)

train: train-deps $(VENV)/.stamp-train
	$(TORCH_ENV) cargo build --release --locked -p cartridge-train

test: test-deps $(VENV)/.stamp-test $(VENV)/.stamp-train lint play-aarch64-build
	$(TORCH_ENV) cargo build --release --locked --workspace --bins
	$(TORCH_ENV) cargo test --release --locked --workspace

# The conventions CI holds the code to: rustfmt's layout and clippy without warnings.
lint: train-deps $(VENV)/.stamp-train
	@command -v rustup >/dev/null && rustup component add rustfmt clippy >/dev/null 2>&1 || true
	cargo fmt --all --check
	$(TORCH_ENV) cargo clippy --release --locked --workspace --all-targets -- -D warnings

bench: build train
	cargo bench --locked -p cartridge-infer --bench runtime
	$(RELEASE)/train ppo --rom breakout --bench

# On a GPU machine: PPO and DQN --bench on CUDA (8 and 64 envs), a run saved and resumed on
# CUDA, a CPU checkpoint resumed on CUDA; one JSON line each (docs/GPU.md).
gpu-smoke: train
	scripts/gpu-smoke.sh $(RELEASE)/train

# CleanRL side by side (needs internet for CleanRL's clone and its pinned Python packages).
bench-compare: train
	scripts/bench-compare.sh $(RELEASE)/train

# The aarch64 `play`: Debian's cross compilers (apt), Debian's rustc, arm64 libraries and qemu
# unpacked into a private folder, PyPI's aarch64 onnxruntime and ale-py wheels; all idempotent.
aarch64-deps: deps $(VENV)/.stamp
	scripts/aarch64.sh setup

play-aarch64-build: aarch64-deps
	scripts/aarch64.sh build

play-aarch64: play-aarch64-build build $(VENV)/.stamp
	@$(MAKE) --no-print-directory $(MODEL)
	scripts/aarch64.sh run $(MODEL) --rom $(GAME) $(PLAY_ARGS)

EVAL_EPISODES ?= 30
eval: build $(VENV)/.stamp
	@$(MAKE) --no-print-directory $(MODEL)
	@$(RELEASE)/play $(MODEL) --rom $(GAME) --headless --episodes $(EVAL_EPISODES) --seed 1 | tail -n 1
	@$(RELEASE)/play $(MODEL) --rom $(GAME) --headless --episodes $(EVAL_EPISODES) --seed 2 --sticky 0.25 | tail -n 1

clean-models:
	rm -rf target/models
