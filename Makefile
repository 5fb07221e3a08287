# actorkv needs cgo (the default) and Debian's RocksDB; `make deps` installs it.
# On a system without apt, install the equivalents and run with SYSTEM_DEPS=.

SYSTEM_DEPS ?= librocksdb-dev
# The partition tests (tests/e2e) give each process a network namespace of
# its own with ip and tc; they skip where namespaces are not permitted.
# The status page's test (tests/e2e) drives Debian's headless chromium.
TEST_DEPS ?= iproute2 chromium
PROTO_DEPS  ?= protobuf-compiler libprotobuf-dev
THRIFT_DEPS ?= thrift-compiler

# The tools that generated the committed messages/*.pb.go.
PROTOC_VERSION     := libprotoc 3.21.12
PROTOC_GEN_GO      := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GO_GRPC := google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.6.2
# The compiler that generated the committed messages/thriftkv (its Go
# library, github.com/apache/thrift, is pinned to the same version in go.mod).
THRIFT_VERSION     := Thrift version 0.17.0

# protoc_gen writes the code generated from messages/*.proto into directory $(1).
protoc_gen = PATH="$(CURDIR)/bin:$$PATH" protoc -I messages \
	--go_out=$(1) --go_opt=paths=source_relative \
	--go-grpc_out=$(1) --go-grpc_opt=paths=source_relative messages/*.proto

# thrift_gen writes the Go code of messages/kv.thrift into $(1)/thriftkv,
# gofmt-formatted (the compiler's own layout is not).
thrift_gen = thrift --gen go:package_prefix=github.com/actorkv/actorkv/messages/,skip_remote \
	-out $(1) messages/kv.thrift && gofmt -w $(1)/thriftkv

BENCH ?= .
PKG   ?= ./...

.DEFAULT_GOAL := test
.PHONY: deps test lint bench run demo build proto proto-check proto-tools certs image compose-certs thrift thrift-check thrift-tools

deps:
	scripts/deps.sh $(SYSTEM_DEPS)

test: deps
	scripts/deps.sh $(TEST_DEPS)
	go vet ./...
	go test -race -count=1 -timeout 30m ./...

lint: deps
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l lists unformatted files:"; echo "$$out"; exit 1; fi
	go vet ./...

bench: deps
	go test -run '^$$' -bench '$(BENCH)' -benchmem $(PKG)

# run serves the gRPC API on the embedded default: three replicas in this
# process, data under ./data, gRPC on 127.0.0.1:7070, metrics on :9100.
# certs writes a CA and certificates for a local TLS cluster into ./certs
# (see docs/CLUSTER.md, "TLS").
certs:
	go run ./scripts/certs -dir certs

# ARGS are kvserver's flags: make run ARGS=--admin
run: deps
	@echo "building kvserver (the first build compiles the RocksDB bindings: a minute or two)..."
	go build -o bin/kvserver ./cmd/kvserver
	bin/kvserver $(ARGS)

# demo runs the supervisor-driven actor demo (data under ./data/demo).
demo: deps
	go run ./cmd/kvdemo

build: deps
	go build -o bin/ ./cmd/...

# image builds the kvserver container image $(IMAGE) (kvserver and kvctl, the
# libraries they load, FROM scratch) with nothing pulled; deploy/ runs it as
# a three-replica cluster: cd deploy && docker compose up -d (docs/CLUSTER.md).
IMAGE ?= actorkv:latest
image: deps
	go build -o bin/ ./cmd/kvserver ./cmd/kvctl
	scripts/image.sh bin $(IMAGE)

# compose-certs writes certificates for deploy/docker-compose.tls.yml into
# certs/compose, valid for the containers' names and the host's loopback. The
# containers run as uid 65532, so the node keys are made readable to all:
# throwaway keys of a local cluster (on real hosts, use your own PKI).
compose-certs:
	go run ./scripts/certs -dir certs/compose -hosts kv0,kv1,kv2,127.0.0.1,localhost
	chmod 0644 certs/compose/node-*-key.pem

proto-tools:
	scripts/deps.sh $(PROTO_DEPS)
	@v=$$(protoc --version 2>/dev/null); [ "$$v" = "$(PROTOC_VERSION)" ] || \
		{ echo "protoc must print '$(PROTOC_VERSION)' (Debian bookworm's protobuf-compiler); found '$$v'" >&2; exit 1; }
	GOBIN="$(CURDIR)/bin" go install $(PROTOC_GEN_GO)
	GOBIN="$(CURDIR)/bin" go install $(PROTOC_GEN_GO_GRPC)

proto: proto-tools
	rm -f messages/*.pb.go
	$(call protoc_gen,messages)

proto-check: proto-tools
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	mkdir "$$tmp/committed" "$$tmp/generated" && cp messages/*.pb.go "$$tmp/committed/" && \
	$(call protoc_gen,"$$tmp/generated") && \
	if ! diff -ru "$$tmp/committed" "$$tmp/generated"; then \
		echo "generated protobuf code is stale: run make proto" >&2; exit 1; fi

thrift-tools:
	scripts/deps.sh $(THRIFT_DEPS)
	@v=$$(thrift --version 2>/dev/null); [ "$$v" = "$(THRIFT_VERSION)" ] || \
		{ echo "thrift must print '$(THRIFT_VERSION)' (Debian bookworm's thrift-compiler); found '$$v'" >&2; exit 1; }

thrift: thrift-tools
	rm -f messages/thriftkv/*.go
	$(call thrift_gen,messages)

thrift-check: thrift-tools
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(call thrift_gen,"$$tmp") && \
	if ! diff -ru messages/thriftkv "$$tmp/thriftkv"; then \
		echo "generated Thrift code is stale: run make thrift" >&2; exit 1; fi
