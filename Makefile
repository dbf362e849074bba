# Two entry points: `make demo` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
APT_TOOLS := tshark nftables iptables softflowd nfdump tcpreplay default-jre-headless chromium chromium-driver libnetfilter-queue-dev
export DEBIAN_FRONTEND := noninteractive
KERNEL_SOURCES := $(wildcard src/kernels/*.c src/kernels/*.h)
KERNELS := $(VENV)/.kernels-built

.PHONY: setup build-tools system-tools demo test lint typecheck unit bench fuzz clean

# The packet kernels are a C extension compiled when the package is installed: the
# compiler and the Python headers come first (Debian: gcc, python3-dev, python3-venv).
build-tools:
	@missing=""; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	$(PYTHON) -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
	  || missing="$$missing python3-dev"; \
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(STAMP): pyproject.toml setup.py | build-tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# an editable install does not rebuild the extension when a C source changes: this does
$(KERNELS): $(STAMP) $(KERNEL_SOURCES)
	$(BIN)/python setup.py --quiet build_ext --inplace
	touch $(KERNELS)

# byte-compile what changed, as pip does for a plain install: a start-up is then never
# spent compiling our own modules (an editable tree has no other step that does it)
setup: $(KERNELS)
	@$(BIN)/python -m compileall -q src

# System tools the tests check our output against (a JRE runs Spark over the flow store;
# iptables installs the live data plane's queue rules; libnetfilter-queue-dev builds the
# netfilterqueue package bench_live.py compares with); installed only when missing.
system-tools:
	@missing=""; \
	for t in tshark:tshark nft:nftables iptables:iptables softflowd:softflowd nfdump:nfdump tcprewrite:tcpreplay java:default-jre-headless chromium:chromium chromedriver:chromium-driver unshare:util-linux systemd-analyze:systemd; do \
	  command -v $${t%%:*} >/dev/null 2>&1 || [ -x /usr/sbin/$${t%%:*} ] || missing="$$missing $${t##*:}"; \
	done; \
	[ -e /usr/include/libnetfilter_queue/libnetfilter_queue.h ] || missing="$$missing libnetfilter-queue-dev pkg-config"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

demo: setup
	@sh examples/demo.sh $(BIN)/diffserv

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: setup
	$(BIN)/mypy src/diffserv

unit: setup system-tools
	DIFFSERV_REQUIRE_TOOLS=1 $(BIN)/pytest -n 2 -q

test: lint typecheck unit

bench: setup system-tools
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	$(BIN)/python benchmarks/run_all.py

# The long fuzzing run (not part of `make test`, which runs a fast slice of the same
# targets): FUZZ_RUNS cases per parser under atheris; the figures go into README.md.
FUZZ_RUNS ?= 1000000
fuzz: setup
	$(BIN)/pip install --quiet -e '.[dev,fuzz]'
	$(BIN)/python tests/fuzz/run_fuzz.py --runs $(FUZZ_RUNS) --update-readme

clean:
	rm -rf $(VENV) build src/diffserv/_kernels.*.so .mypy_cache .pytest_cache .ruff_cache
