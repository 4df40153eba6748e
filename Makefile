# Set-up and the main jobs. Everything installs into .venv inside the repo.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench fuzz sample serve clean chain chain-tools verify-aave

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "basiskit needs Python 3.11+, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,search,ray,live,postgres]'
	@# Browser tests drive Debian's Chromium; install it where missing (needs root, as on CI).
	@if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } \
	      || echo "note: chromium could not be installed: browser tests will skip"; \
	  else echo "note: chromium and chromium-driver are missing and this is not root: browser tests will skip"; fi; \
	fi
	@# The PostgreSQL tests start a throw-away server with Debian's initdb and pg_ctl; install them where missing.
	@if ! command -v initdb >/dev/null && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql; } \
	      || echo "note: postgresql could not be installed: PostgreSQL tests will skip"; \
	  else echo "note: postgresql (initdb, pg_ctl) is missing and this is not root: PostgreSQL tests will skip"; fi; \
	fi
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/basiskit backtest pure_lending_usdt

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports

# anvil and Aave v3's compiled contracts from the npm registry, into chain/node_modules (ignored); npm's output
# goes to stderr. Without npm (and not root to install it) the chain tests skip, naming what is missing.
CHAIN_TOOLS := chain/node_modules/.installed

$(CHAIN_TOOLS): chain/package.json chain/package-lock.json
	@if ! command -v npm >/dev/null && [ "$$(id -u)" = 0 ]; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm; } >&2 \
	    || echo "note: npm could not be installed: the chain tests will skip" >&2; \
	fi
	@if command -v npm >/dev/null; then \
	  npm ci --prefix chain --no-audit --no-fund --loglevel=error 1>&2 && touch $@; \
	else echo "note: npm is missing: the chain tests will skip (anvil and @aave/core-v3 not installed)" >&2; fi

chain-tools: $(CHAIN_TOOLS)

# Anvil on 127.0.0.1:8545 with an Aave v3 market deployed from the artifacts (addresses printed as JSON).
chain: $(STAMP) chain-tools
	$(BIN)/basiskit chain up

# The Aave model against Aave's own contracts; the last stdout line is a JSON summary.
verify-aave: $(STAMP) chain-tools
	@$(BIN)/basiskit chain verify-aave

test: $(STAMP) chain-tools
	$(BIN)/ruff check src tests
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

FULL_DATA ?= ../shared/market-data
FUZZ_EXAMPLES ?= 200

# Property tests over many random configs (FUZZ_EXAMPLES per mode, six modes) and hostile inputs, and the
# cut-data causality check at FUZZ_EXAMPLES random hours (every mode); prints the counts (ran, refused,
# liquidated) and the worst cost and rebalance rates seen. And a live session resuming after a 10,000-block gap
# on the local chain (anvil mines those blocks in about a minute; `make test` uses 2,500).
fuzz: $(STAMP) chain-tools
	BASISKIT_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest -q -s -p no:cacheprovider \
	  tests/test_properties.py tests/test_hostile_input.py tests/test_causality.py \
	  tests/test_paper.py::test_a_replay_equals_the_backtest_for_random_configs tests/test_live_safety.py
	BASISKIT_GAP_BLOCKS=10000 $(BIN)/python -m pytest -q -p no:cacheprovider tests/test_live_operations.py -k gap

bench: $(STAMP)
	$(BIN)/python -m basiskit.bench $(if $(wildcard $(FULL_DATA)/MANIFEST.json),--data $(FULL_DATA))

sample: $(STAMP)
	$(BIN)/basiskit data sample --source $(FULL_DATA)

serve: $(STAMP)
	$(BIN)/basiskit serve

clean:
	rm -rf $(VENV) build src/*.egg-info chain/node_modules
