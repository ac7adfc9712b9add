# kvmesh — the two commands that matter: `make run` and `make test`.
GO      ?= go
BIN     := bin/kvmesh
PKGS    := ./...

.PHONY: all build run test unit e2e vet fuzz bench bench-go figures clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/kvmesh

## run: a local 3-node cluster on loopback, data under ./data (Ctrl-C stops it)
run: build
	./$(BIN) dev

## test: vet, then every unit, integration and e2e test with the race
## detector, then the node and store tests of the planted durability bug
## (code that only a build with the kvmesh_planted tag has)
test: vet
	$(GO) test -race -count=1 -timeout 12m $(PKGS)
	$(GO) test -race -count=1 -timeout 5m -tags kvmesh_planted -run 'Planted|EarlyAck' ./node/...

## unit: the fast tier: every package with -short (the fault suite's
## nemeses and the long simulation loops skip)
unit:
	$(GO) test -race -count=1 -short $(PKGS)

e2e:
	$(GO) test -race -count=1 -timeout 10m -v ./e2e/...

## soak: the simulation tier over SOAK_SEEDS seeds, then the fault suite's
## long runs (notes/reliability.md T3): every nemesis
## SOAK_RUNS times with SOAK_FAULT of faults each, then a summary table
## (nemesis, runs, ops, acked, lost, availability, convergence). Failed runs
## keep their evidence in a directory whose path is printed.
SOAK_RUNS  ?= 3
SOAK_FAULT ?= 60s
SOAK_SEEDS ?= 200
soak:
	bash -o pipefail -c "KVMESH_SIM_SEEDS=$(SOAK_SEEDS) $(GO) test -count=1 -timeout 60m -run '^TestSim$$' -v ./node/ | grep -E '^(--- |ok|FAIL|PASS)|seeds \('"
	KVMESH_SOAK=1 KVMESH_SOAK_RUNS=$(SOAK_RUNS) KVMESH_SOAK_FAULT=$(SOAK_FAULT) \
		$(GO) test -race -count=1 -timeout 120m -run '^(TestFault|TestPlanted)' -v ./e2e/

vet:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags kvmesh_planted $(PKGS)

## fuzz: run every fuzz target of the wire decoders for FUZZTIME each
FUZZTIME ?= 20s
fuzz:
	for t in $$($(GO) test -list '^Fuzz' ./protocol/ | grep '^Fuzz'); do \
		$(GO) test -run='^$$' -fuzz="^$$t$$" -fuzztime=$(FUZZTIME) ./protocol/ || exit 1; \
	done

## bench: kvmesh side by side with JetStream KV R3 (kvmesh bench: about 5 min;
## BENCHFLAGS=--quick for a 1-minute smoke run, see ./bin/kvmesh bench -h)
BENCHFLAGS ?=
bench: build
	./$(BIN) bench $(BENCHFLAGS)

## bench-go: Go benchmarks of the hot code and of a 3-node cluster
bench-go:
	$(GO) test -run='^$$' -bench=. -benchmem ./node/... ./protocol/ ./e2e/

## figures: the measurements the README quotes that are tests rather than
## benchmarks (sloppy-quorum availability, hint replay rate); figures in the
## log; and docs/status.png, the status page of a 3-node store with a node
## down (needs chromium)
figures:
	KVMESH_FIGURES=1 $(GO) test -count=1 -run 'TestHintFigures' -v ./node/
	KVMESH_FIGURES=1 $(GO) test -count=1 -run 'TestStatusPageInBrowser' -v ./e2e/

clean:
	rm -rf bin
