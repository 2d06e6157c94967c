# keel: `make run` builds the reference image and boots it; `make test`
# runs every test. Both install what they need (hack/install-deps.sh).

GO          ?= go
BIN         := bin/keel
OUT         ?= out
ARCH        ?= $(shell $(GO) env GOARCH)
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -s -w -X main.version=$(VERSION)
TEST_TIMEOUT ?= 85m

.PHONY: all build deps test-deps run test test-short fuzz bench vet fmt clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/keel

# Debian's packages (QEMU, runc, …).
deps:
	./hack/install-deps.sh

# buildkitd, built once at a pinned version (hack/install-buildkitd.sh),
# for the BuildKit tests: only `make test` needs it.
test-deps: deps
	GO=$(GO) ./hack/install-buildkitd.sh >/dev/null

# Build the reference image (build.toml) and boot it under QEMU.
run: deps build
	$(BIN) build --dir $(OUT) build.toml
	$(BIN) run qemu $(OUT)/host-$(ARCH)-efi.qcow2

vet:
	$(GO) vet ./...

fmt:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }

# Every test: unit, fuzz seeds, host integration (as root), and the boot
# tests under QEMU; then every fuzz target for FUZZTIME (hack/fuzz.sh).
test: test-deps fmt vet
	$(GO) test -timeout $(TEST_TIMEOUT) ./...
	GO=$(GO) ./hack/fuzz.sh

# Unit tests only: no network, no QEMU. Tests that need either call
# internal/testenv's NeedNetwork or NeedQEMU and are skipped under -short
# (make test runs them). Loopback is not the network: to check the promise,
# unshare -n sh -c 'ip link set lo up && make test-short'.
test-short: fmt vet
	$(GO) test -short ./...

# Every fuzz target, longer: make fuzz FUZZTIME=1m (FUZZ_MATCH=regex).
fuzz:
	GO=$(GO) ./hack/fuzz.sh

bench: deps build
	./hack/bench.sh

clean:
	rm -rf bin $(OUT)
