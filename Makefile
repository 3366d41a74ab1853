# The registry and its hard prune. `make demo` runs the maintenance window on a local setup;
# `make test` runs every test, the end-to-end ones included.
GO      ?= go
BIN_DIR ?= $(CURDIR)/_output/bin
export E2E_BIN_DIR := $(BIN_DIR)

.PHONY: all build tools test unit e2e lint demo bench profile clean fuzz

all: build

# The product: one binary that serves the registry or prunes its storage.
build:
	$(GO) build -o $(BIN_DIR)/dockerregistry ./cmd/dockerregistry

# Test infrastructure: etcd (Debian's package) and the image API server (its own Go module),
# cached in $(BIN_DIR) so the second run takes seconds.
tools:
	bash e2e/tools/build.sh

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt would change:"; echo "$$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

unit:
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /e2e)

# End-to-end: real etcd, real image API server, the registry binary, a real client.
e2e: build tools
	E2E_REQUIRED=1 $(GO) test -count=1 -timeout 30m ./e2e/...

test: lint build tools
	E2E_REQUIRED=1 $(GO) test -count=1 -timeout 40m ./...

# The demo needs only etcd and the image API server besides the registry.
demo: build
	bash e2e/tools/build.sh demo
	$(GO) run ./e2e/demo

# Benchmark: a synthetic registry (BENCH_SIZE=full: 200k blobs, 20k repositories, 30% orphans; huge: 1M blobs;
# small: a quick smoke run) in filesystem and S3 (versitygw) storage plus its Images and
# ImageStreams; -prune=check against find and distribution's garbage-collect, and -prune=delete
# against xargs rm -rf of the same paths (on copies), in BENCH_RUNS rounds (in turn: the page
# cache does not stay warm), medians with each run's figure; one -prune=delete on a copy of the
# S3 bucket, its requests counted; issue 14's targets, each with its measured value and met/no,
# or what would measure it; then the ordinary prune (-prune-images) over a loaded cluster
# (BENCH_ORDINARY=false skips it; full: 100k Images, 10k streams, 50k pods); then the push cost
# of the online prune protocol (issue 13: pushes to a registry without the protocol, with it
# idle, during a prune run; BENCH_ONLINE=false skips it; about 1.5 minutes); then the Go
# benchmarks of the decision. Results: BENCH_OUT, every part (set it rather than -out in
# BENCH_FLAGS).
BENCH_SIZE ?= full
BENCH_RUNS ?= 3
BENCH_GC_RUNS ?= $(BENCH_RUNS)
# garbage-collect on S3 makes a request per manifest and link: minutes per run at full size.
BENCH_S3_GC_RUNS ?= $(if $(filter full,$(BENCH_SIZE)),0,1)
BENCH_OUT ?= _output/bench/results.md
BENCH_WORK ?= _output/bench/work
BENCH_ORDINARY ?= true
BENCH_ONLINE ?= true
BENCH_FLAGS ?=
bench: build tools
	$(GO) run ./bench/cmd/bench -size=$(BENCH_SIZE) -runs=$(BENCH_RUNS) -gc-runs=$(BENCH_GC_RUNS) \
		-s3-gc-runs=$(BENCH_S3_GC_RUNS) -strace=$$(command -v strace >/dev/null && echo true || echo false) \
		-ordinary=$(BENCH_ORDINARY) -online=$(BENCH_ONLINE) -work=$(BENCH_WORK) -out=$(BENCH_OUT) $(BENCH_FLAGS)
	$(GO) test -count=1 -run '^$$' -bench . ./bench > $(basename $(BENCH_OUT))-gobench.txt
	@{ echo; echo '### Go benchmarks (prune.Decide, ReferenceBuilder, DigestSet; full-size inputs)'; echo; \
		echo '```'; grep -E '^(Benchmark|goos|goarch|cpu)' $(basename $(BENCH_OUT))-gobench.txt; echo '```'; } \
		| tee -a $(BENCH_OUT)

# Profile the whole -prune=check run, CPU and allocations (the bench with -profile, one timed
# round, no garbage-collect or deletes, on PROFILE_BACKENDS): the profiles stay in
# BENCH_WORK/profile, and the top of each (go tool pprof -top) is printed and kept beside
# BENCH_OUT (-profile.txt).
PROFILE_BACKENDS ?= filesystem
profile: build tools
	$(GO) run ./bench/cmd/bench -size=$(BENCH_SIZE) -runs=1 -gc-runs=0 -s3-gc-runs=0 -delete=false \
		-s3-latency=0 -backends=$(PROFILE_BACKENDS) -profile -work=$(BENCH_WORK) -out=$(basename $(BENCH_OUT))-profile.md $(BENCH_FLAGS)
	@for p in $(BENCH_WORK)/profile/*.pprof; do echo; echo "== $$p"; $(GO) tool pprof -top -nodecount=30 $$p; done \
		| tee $(basename $(BENCH_OUT))-profile.txt

clean:
	rm -rf _output

# Fuzz the parsers of storage paths and link files; new finds land in the Go cache, and
# interesting ones are kept in storage/testdata/fuzz, which `go test` replays.
fuzz:
	$(GO) test ./storage -run '^$$' -fuzz FuzzParsePath -fuzztime 60s
	$(GO) test ./storage -run '^$$' -fuzz FuzzParseLink -fuzztime 30s
