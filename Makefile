# imgpipe: `make demo` runs the whole pipeline on generated data; `make test` runs every test.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
PNPM ?= $(shell command -v pnpm >/dev/null 2>&1 && echo pnpm || echo "npx --yes pnpm@10")

.PHONY: install build test bench demo clean typecheck

node_modules/.modules.yaml: package.json pnpm-lock.yaml packages/*/package.json
	ONNXRUNTIME_NODE_INSTALL=skip $(PNPM) install --frozen-lockfile
	@touch $@

install: node_modules/.modules.yaml

build: install
	$(PNPM) run build

typecheck: build
	$(PNPM) exec tsc -p tsconfig.test.json

test: build typecheck
	$(PNPM) run test

bench: build
	$(PNPM) run bench

demo: build
	node scripts/demo.mjs

clean:
	rm -rf packages/*/dist packages/*/tsconfig.tsbuildinfo bench-results
