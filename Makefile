# rwxfs build, test and lint. `make run` serves the single-node default;
# `make test` runs every test (race detector on, fuzz seeds included).
GO        ?= go
BIN       := bin/rwxfs
DATA      ?= ./rwxfs-data
STATICCHECK_VERSION := v0.8.2
GOBIN     := $(shell $(GO) env GOPATH)/bin

.PHONY: build run test test-short lint bench bench-nfs fuzz clean

build:
	$(GO) build -o $(BIN) ./cmd/rwxfs

# The single-node default: embedded etcd, one chunk node and the NFS
# frontend over $(DATA), serving the volume "default" on port 2049 (portmap on
# 111 when run as root). It prints the mount command.
run: build
	./$(BIN) serve --data $(DATA)

# -p 1 keeps tests that share ports, disks or mounts from stepping on each other
# and keeps a 2-core machine from thrashing.
test:
	$(GO) test -race -p 1 -timeout 30m ./...

test-short:
	$(GO) test -short -p 1 ./...

# The real Linux NFSv3 client (Debian's kernel in qemu) against rwxfs serve,
# with a frontend restart in the middle; about a minute under TCG. Needs
# apt-get install -y qemu-system-x86 linux-image-amd64 busybox-static xz-utils
# (e2e/README.md); E2E_FLAGS=-v prints the whole guest console.
.PHONY: e2e
e2e: build
	$(GO) build -o bin/rwxfs-e2e ./e2e/harness
	bin/rwxfs-e2e -rwxfs $(BIN) $(E2E_FLAGS)

lint:
	$(GO) vet ./...
	@test -x $(GOBIN)/staticcheck || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...

# Every benchmark of docs/benchmarks.md with its ceilings, in one run
# (BIG=1 for the 1 GiB / 100,000-entry cases); raw output in bench/results-*.txt.
bench:
	bench/run.sh

# The NFS frontend against NFS-Ganesha and go-nfs over the same load
# generator (bench/nfsload), side by side with ratios; needs root for
# Ganesha (apt-get install -y nfs-ganesha nfs-ganesha-vfs rpcbind).
# ROUNDS=2 keeps each server's best of two rounds.
bench-nfs: build
	bench/nfs.sh

clean:
	rm -rf bin
