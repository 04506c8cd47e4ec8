# make run   set up, build, run the daemon on the bundled demo clip (pipelines/demo.toml):
#            colour video at rtsp://127.0.0.1:8554/demo, recordings in recordings/demo/
# make report colorize the bundled sample pairs and write an HTML page beside the ground truth
# make test  set up (with the Python reference environment) and run the whole test suite
# make bench the guided filter against OpenCV and the default model's frame time, printed
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
BIN := target/release/nircolor

.PHONY: setup test-setup build plugin run report test bench lint fmt fuzz

# `make fuzz`: every fuzz target for this long (seconds); `make test` runs a short pass.
FUZZ_SECONDS ?= 600

setup:
	@scripts/setup

test-setup:
	@scripts/setup --venv

# The daemon and the GStreamer plugin (target/release/libgstnircolor.so).
build: setup
	$(CARGO) build --release --locked --workspace

# The GStreamer element alone: GST_PLUGIN_PATH=$(CURDIR)/target/release gst-inspect-1.0 nircolorize
plugin: setup
	$(CARGO) build --release --locked -p gst-plugin-nircolor

run: build
	@echo "Starting the demo: watch it with  ffplay rtsp://127.0.0.1:8554/demo  (or vlc/mpv);"
	@echo "the status page is http://127.0.0.1:9464/ (both pictures and the figures of each camera),"
	@echo "recordings go to recordings/demo/, metrics to http://127.0.0.1:9464/metrics. Ctrl-C stops."
	$(BIN) run --config pipelines/demo.toml

report: build
	$(BIN) eval --model default --data samples --report out/demo --json out/demo/results.json
	@echo
	@echo "Open out/demo/index.html to see NIR | colour | ground truth side by side."

# `build` first: the test build resolves a few crates' features differently (dev-dependencies),
# so `cargo test` alone would leave `make run` to compile GStreamer and nircolor again.
test: test-setup build
	$(CARGO) test --release --locked --workspace
	scripts/fuzz 10

fuzz: test-setup
	scripts/fuzz $(FUZZ_SECONDS)

bench: test-setup build
	$(BIN) bench filter
	$(BIN) bench model --model default --size 640x480

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets --locked --workspace -- -D warnings

fmt:
	$(CARGO) fmt
