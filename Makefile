# hnsec — `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
PKGS  := ./gen/... ./pkg/... ./services/...
TOOLS := github.com/bufbuild/buf/cmd/buf \
         google.golang.org/protobuf/cmd/protoc-gen-go \
         google.golang.org/grpc/cmd/protoc-gen-go-grpc \
         github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway \
         github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(BIN)/buf: tools/go.mod tools/go.sum
	cd tools && GOWORK=off $(GO) build -o $(BIN)/ $(TOOLS)
	@touch $@

.PHONY: tools
tools: $(BIN)/buf ## build buf and the protoc plugins pinned in tools/go.mod into bin/

$(BIN)/kubecheck: tools/go.mod tools/go.sum $(wildcard tools/kubecheck/*.go)
	cd tools && GOWORK=off $(GO) build -o $(BIN)/kubecheck ./kubecheck

.PHONY: k8s-check
k8s-check: $(BIN)/kubecheck ## build deploy/k8s with Kustomize and check every object against the Kubernetes API types
	cd tools && GOWORK=off $(GO) test -count=1 ./kubecheck
	$(BIN)/kubecheck deploy/k8s/overlays/example
	$(BIN)/kubecheck -external Secret/hnsec-secrets deploy/k8s/base

.PHONY: generate
generate: tools ## regenerate gen/ from proto/ (buf lint first)
	$(BIN)/buf lint
	rm -rf gen/hnsec gen/openapi/*.json
	$(BIN)/buf generate

.PHONY: check-generate
check-generate: generate ## fail when gen/ differs from what proto/ generates
	@git diff --exit-code -- gen || { echo "gen/ is stale: run make generate and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- gen)" || { git status --porcelain -- gen; echo "gen/ has untracked files: run make generate and commit"; exit 1; }

.PHONY: check-size
check-size: ## fail when git tracks a file over 1 MiB outside testdata (build outputs stay out of the repository)
	@big=$$(git ls-files -z | xargs -0 -r stat -c '%s %n' | awk '$$1 > 1048576 && $$2 !~ /(^|\/)testdata\// {print $$2}'); \
	test -z "$$big" || { echo "tracked files over 1 MiB (build outputs stay out of git):"; echo "$$big"; exit 1; }

.PHONY: build
build: ## build bin/hnsec (hnsec version names the commit)
	$(GO) build -ldflags "-X github.com/hnsec/hnsec/pkg/version.commit=$$(git rev-parse --short HEAD 2>/dev/null)$$(git diff --quiet HEAD 2>/dev/null || echo -modified)" \
		-o $(BIN)/hnsec ./services/hnsec

.PHONY: run
run: build ## run every service in one process in dev mode (REST :8080, gRPC :9090, data in ./data)
	$(BIN)/hnsec serve --dev

.PHONY: lint
lint: tools ## buf lint, gofmt and go vet
	$(BIN)/buf lint
	@out=$$(gofmt -l gen pkg services); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }
	$(GO) vet $(PKGS)

.PHONY: test
test: ## run every test (fuzz seed corpora included); with HNSEC_TEST_DATABASE_URL also on PostgreSQL and the cluster test
	$(GO) test -count=1 -timeout 20m $(PKGS)
	@if [ -n "$$HNSEC_TEST_DATABASE_URL" ]; then \
		echo "end-to-end tests again, every in-process server on PostgreSQL, and the scale-out cluster test"; \
		HNSEC_TEST_E2E_POSTGRES=1 HNSEC_TEST_CLUSTER=1 $(GO) test -count=1 -timeout 20m ./services/hnsec; \
	fi

.PHONY: test-cluster
test-cluster: ## the scale-out cluster test: 3-node NATS, PostgreSQL (HNSEC_TEST_DATABASE_URL), replicas of every service
	HNSEC_TEST_CLUSTER=1 HNSEC_TEST_DATABASE_URL=$${HNSEC_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
		$(GO) test -count=1 -timeout 10m -run '^TestScaleOutCluster$$' -v ./services/hnsec

.PHONY: fuzz
fuzz: ## fuzz the request parsers for FUZZTIME each (default 30s)
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeForm$$' -fuzztime $${FUZZTIME:-30s} ./services/gateway
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeJSON$$' -fuzztime $${FUZZTIME:-30s} ./services/gateway
	$(GO) test -run '^$$' -fuzz '^FuzzParseBasic$$' -fuzztime $${FUZZTIME:-30s} ./pkg/clientauth

.PHONY: bench
bench: ## load benchmarks on loopback (tokens, introspection, PVK, webhooks; the local cluster with 1 and 2 replicas on PostgreSQL)
	HNSEC_TEST_DATABASE_URL=$${HNSEC_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test} \
		$(GO) test -run '^$$' -bench $${BENCH:-.} -benchtime 1x -timeout 30m ./services/hnsec
