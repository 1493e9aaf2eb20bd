# claude-parallel — build, test and run targets.
# Everything a target needs (Docker engine, test image) is prepared by the
# scripts under hack/, so every target works from a fresh clone.

GO        ?= go
BIN       ?= bin/claude-parallel
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
PKGS      := ./...
# go test timeout for each test binary; the whole of make test is kept under 20 minutes.
TEST_TIMEOUT ?= 18m

.PHONY: postgres docker2 claude-code agent-image services fuzz all build test test-unit test-e2e test-docker-restart lint fmt vet docker image run demo bench soak clean

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/claude-parallel

## docker: make a Docker engine answer (installs docker.io with apt on Debian if needed).
docker:
	bash hack/ensure-docker.sh

## docker2: a second Docker engine on its own socket and data root (the
## remote-engine tests' workspace_transfer: copy), with the test image loaded.
docker2: image
	bash hack/ensure-docker2.sh

## claude-code: install the pinned Claude Code CLI once (the client e2e test runs it too).
claude-code:
	bash hack/ensure-claude-code.sh

## image: build the local busybox test/demo image (FROM scratch, no registry).
image: docker
	bash hack/build-test-image.sh

## agent-image: build the `claude` profile's image claude-parallel/agent:latest FROM
## scratch out of Debian's packages and the pinned Claude Code (no registry needed;
## skipped when up to date). hack/images/agent/Dockerfile is for machines with one.
agent-image: docker
	bash hack/build-agent-image.sh

## services: the real programs the service and dashboard tests drive (Debian's
## supervisor, prometheus and chromium), installed once per machine and reused.
## postgres: the tests' own PostgreSQL (Debian's package; unix socket only,
## data in /tmp/claude-parallel-pg, run as user postgres). The store suite,
## the chaos tests and the replica test run on it as well as on SQLite.
postgres:
	bash hack/ensure-postgres.sh >/dev/null

services: postgres
	bash hack/ensure-supervisor.sh
	bash hack/ensure-prometheus.sh
	bash hack/ensure-chromium.sh

lint: vet
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

## test: every test, including the Docker and end-to-end ones (prepares Docker first).
test: image agent-image docker2 services claude-code lint
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) -p 2 $(PKGS)
	$(MAKE) fuzz FUZZTIME=20000x
	$(MAKE) test-docker-restart

## test-docker-restart: restart the Docker daemon while tasks run; none may be lost.
## It stops the machine's dockerd, so it runs last and alone (ends with one answering).
test-docker-restart: image
	CP_DOCKER_RESTART_TEST=1 $(GO) test -count=1 -timeout 10m -run '^TestDockerRestart_' -v ./test/e2e/

## fuzz: the MCP request decoding under go test -fuzz (FUZZTIME per target).
FUZZTIME ?= 60s
fuzz:
	$(GO) test -run '^$$' -fuzz='^FuzzDecodeTaskWorker$$' -fuzztime=$(FUZZTIME) ./mcp/
	$(GO) test -run '^$$' -fuzz='^FuzzDecodeApplyChanges$$' -fuzztime=$(FUZZTIME) ./mcp/

test-unit: postgres lint
	$(GO) test -count=1 -short $(PKGS)

test-e2e: image agent-image docker2 build postgres
	$(GO) test -count=1 -timeout 30m ./test/...

## run: the product's main job on its embedded defaults.
run: image build
	$(BIN) doctor

demo: image build
	bash hack/demo.sh

## bench: the performance figures, all measured in this one run (tens of minutes):
## the store with 1,000 vs 100,000 finished tasks, the idle reconcile pass with
## 0 / 1,000 / 100,000, and task start (intent written -> container running)
## against creating and starting the same container directly (the floor), and
## a workspace's snapshot and capture on 10k / 100k / 300k files against cp -a
## and git status + git diff on the same tree (CP_BENCH_LARGE_FILES=n,... to
## pick sizes; 300k files take several minutes to generate on a loaded machine),
## and every read tool through the go-sdk MCP client against the real server over stdio at
## 1,000 vs 100,000 and 1,000,000 finished tasks (CP_BENCH_NO_MILLION=1 skips the million),
## task_worker and apply_changes latency against the same server (BenchmarkTaskWorker,
## BenchmarkApplyChanges).
## BenchmarkStoreDrivers: task start and apply_changes with the store on PostgreSQL
## against SQLite in the same run (ratio postgres/sqlite). BenchmarkHeavyRepositories:
## snapshot, capture and apply on 1 GB of binaries and on 100,000 commits
## (CP_BENCH_HEAVY=binaries|history runs one; generating 1 GB takes minutes on a loaded
## machine). BenchmarkIdleServer: the real server at rest (CPU a minute, memory, pickup).
BENCH_RUN := '^(BenchmarkStoreScaling|BenchmarkIdleReconcile|BenchmarkIdleServer|BenchmarkTaskStart|BenchmarkRemoteTransfer|BenchmarkLargeRepository|BenchmarkHeavyRepositories|BenchmarkReadScaling|BenchmarkApplyChanges|BenchmarkTaskWorker|BenchmarkStoreDrivers)$$'
bench: image docker2 build postgres
	$(GO) test -p 1 -count=1 -timeout 120m -run '^$$' -bench $(BENCH_RUN) -benchtime 1x ./models/ ./controllers/ ./controllers/workspace/ ./test/e2e/

soak: image build postgres
	CP_STRESS_SECONDS=120 $(GO) test -count=1 -timeout 60m -run 'Stress|Soak|Chaos' ./...

clean:
	rm -rf bin
