# rwxfs build, test and lint. `make run` serves the single-node default;
# `make test` runs every test (race detector on, fuzz seeds included).
GO        ?= go
BIN       := bin/rwxfs
DATA      ?= ./rwxfs-data
STATICCHECK_VERSION := v0.8.2
GOBIN     := $(shell $(GO) env GOPATH)/bin

.PHONY: build run test test-short lint bench fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/rwxfs

# Until the NFS frontend exists, the single-node default is: an embedded etcd
# in $(DATA)/etcd holding a formatted filesystem with a "default" volume, and
# one chunk node storing blocks in $(DATA)/chunk (the etcd runs inside it).
run: build
	@if ! ./$(BIN) volume get --data $(DATA) default >/dev/null 2>&1; then \
		./$(BIN) format --data $(DATA) 2>/dev/null || true; \
		./$(BIN) volume create --data $(DATA) default; \
	fi
	./$(BIN) chunk --data $(DATA) --dir $(DATA)/chunk --listen 127.0.0.1:9420 --reserve 256MiB

# -p 1 keeps tests that share ports, disks or mounts from stepping on each other
# and keeps a 2-core machine from thrashing.
test:
	$(GO) test -race -p 1 -timeout 30m ./...

test-short:
	$(GO) test -short -p 1 ./...

lint:
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...

# Every benchmark of docs/benchmarks.md with its ceilings, in one run
# (BIG=1 for the 1 GiB / 100,000-entry cases); raw output in bench/results-*.txt.
bench:
	bench/run.sh

clean:
	rm -rf bin
