# make run   set up, build, colorize the bundled samples and print where the result page is
# make test  set up (with the Python reference environment) and run the whole test suite
# make bench the guided filter against OpenCV, printed
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)
CARGO ?= cargo
BIN := target/release/nircolor

.PHONY: setup test-setup build run test bench lint fmt

setup:
	@scripts/setup

test-setup:
	@scripts/setup --venv

build: setup
	$(CARGO) build --release --locked

run: build
	$(BIN) eval --model l3 --post guided --data samples --report out/demo --json out/demo/results.json
	@echo
	@echo "Open out/demo/index.html to see NIR | colour | ground truth side by side."

test: test-setup
	$(CARGO) test --release --locked

bench: test-setup build
	$(BIN) bench filter

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --release --all-targets --locked -- -D warnings

fmt:
	$(CARGO) fmt
