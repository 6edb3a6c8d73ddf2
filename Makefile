# Everything runs from a local virtualenv (.venv) and local node_modules:
# nothing needs to be installed by hand besides python3 (3.11+), node 20 and npm.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1
# Some machines (this project's CI among them) set PYTHONDONTWRITEBYTECODE=1: every Python
# process then compiles every module it imports from source, each xdist worker and each
# subprocess again (importing aws_cdk, moto and boto3: 7.6 s instead of 2.6 s). Bytecode
# caches are build outputs like any other here (`make clean` removes them).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: help install test coverage lint typecheck unit infra synth package-check demo serve bench bench-smoke upgrade-baseline clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

# uv installs the same pinned versions as pip (constraints.txt pins every package) in
# seconds instead of minutes: measured 13 s against 6 min 16 s for pip on this project
# (docs/performance.md, "CI time"). It lives in its own small venv under build/.
UV_VERSION := 0.13.9
UV := build/tools/bin/uv

$(UV):
	$(PYTHON) -m venv build/tools
	build/tools/bin/python -m pip install --quiet uv==$(UV_VERSION)

# --seed puts pip in the venv: the Lambda bundling runs `python -m pip install --target`.
# --compile-bytecode: compiled once here, on every core (about 40 s), instead of by each test
# process that first imports a module (make test on a fresh venv: 306 s against 260 s).
$(BIN)/.installed: pyproject.toml constraints.txt | $(UV)
	$(UV) venv --quiet --seed --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python -c constraints.txt -e '.[cdk,dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(BIN)/.installed  ## create .venv with the Lambda, CDK and test dependencies

lint: install  ## ruff (lint + format check)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install  ## mypy, strict, on the Lambda, the CDK app and the tools
	$(BIN)/mypy lambda_fn cdk fargate_runners localdev runners_cli bench

unit: install  ## handler, pure-logic, local-mode and CLI tests (no CDK synth)
	$(BIN)/pytest -n auto tests/unit tests/integration tests/localdev tests/cli

infra: install  ## CDK assertions, cdk-nag and cfn-lint on the synthesized template
	$(BIN)/pytest -n auto tests/infra

# loadgroup: the tests that synthesize share one worker (tests/conftest.py says why).
test: lint typecheck  ## the full offline suite on every core (what CI runs)
	$(BIN)/pytest -n auto --dist loadgroup

coverage: install  ## the full suite with a branch-coverage report (slower: kept out of CI's 15 minutes)
	$(BIN)/pytest -n auto --dist loadgroup --cov --cov-report=term:skip-covered --cov-report=xml

# package-check, step by step: the wheel in a fresh virtualenv, with moto (the dev extra's
# requirement) for cli_check.py's server; user_app.py synthesizes with a bundle cache of its
# own, then again with cdk.out removed and no package index or find-links reachable (the
# bundler's pip is the venv's, seeded: so the Lambda bundle must come from that cache);
# cli_check.py loads the Team stack into moto and runs the installed CLI on it.
OFFLINE_PIP := env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null \
	PIP_INDEX_URL=http://127.0.0.1:9/ PIP_NO_INDEX=1
WHEEL_PY := $(CURDIR)/build/wheel-venv/bin/python -I

package-check: install node_modules/.installed | $(UV)  ## build the wheel, install it in a fresh venv, synth a user's app outside the repo (again offline), run the installed CLI on it in moto
	rm -rf build/dist build/wheel-venv
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir build/dist .
	$(UV) venv --quiet --seed --python $(PYTHON) build/wheel-venv
	$(UV) pip install --quiet --python build/wheel-venv/bin/python -c constraints.txt \
		"$$(ls build/dist/*.whl)[cdk]" "$$(grep -o '"moto\[[^"]*' pyproject.toml | tr -d '"')"
	app=$$(mktemp -d) && cp tests/package/user_app.py tests/package/cli_check.py "$$app/" && \
		cd "$$app" && export PATH="$(CURDIR)/build/wheel-venv/bin:$$PATH" \
		CDK_DEFAULT_REGION=eu-west-1 FARGATE_RUNNERS_CACHE_DIR="$$app/cache" && \
		$(WHEEL_PY) user_app.py && rm -rf cdk.out && \
		echo "package check: synth again, no package index reachable" && \
		$(OFFLINE_PIP) $(WHEEL_PY) user_app.py && \
		$(WHEEL_PY) cli_check.py && rm -rf "$$app"

synth: install node_modules/.installed  ## `cdk synth` through the pinned CDK CLI, then cfn-lint
	rm -rf cdk.out
	PATH="$(CURDIR)/$(BIN):$$PATH" npx --no-install cdk synth --no-notices --quiet
	$(BIN)/cfn-lint -i W3005 -- cdk.out/*.template.json

demo: install  ## offline demo: signed deliveries -> local handler -> tasks in a local moto (no account)
	$(BIN)/python -m localdev.demo

serve: install  ## local webhook endpoint (moto + GitHub stand-in) for a webhook relay; --aws: real account
	$(BIN)/fargate-runners serve $(ARGS)

bench: install  ## benchmarks (offline, several minutes with the scale simulation; see docs/performance.md): report + build/bench/report.json
	$(BIN)/python -m bench

bench-smoke: install  ## the benchmarks at CI size (~30 s); fails only on correctness
	$(BIN)/python -m bench --smoke

upgrade-baseline: install  ## at a release: COMMIT=<release> writes tests/upgrade/<commit>/ (then point BASELINE at it)
	@test -n "$(COMMIT)" || { echo "usage: make upgrade-baseline COMMIT=<release commit>"; exit 2; }
	$(BIN)/python -m tests.upgrade.baseline $(COMMIT)

clean:  ## remove build outputs (keeps .venv and node_modules)
	rm -rf cdk.out build .pytest_cache .mypy_cache .ruff_cache .coverage coverage.xml htmlcov
	find . -path ./.venv -prune -o -path ./node_modules -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +
