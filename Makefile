# vpcroute: `make demo` runs the guide's two-ECS scenario on the built-in emulator;
# `make test` runs every test (root-only ones skip with a reason when not root).
GO       ?= go
VERSION  ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
PLUGIN   ?= vpcroute
REPO     ?= vpcroute/vpcroute
TAG      ?= latest
# Packages whose tests start real Docker engines in test beds: run one at a time.
BED_PKGS := ./internal/testbed/... ./internal/e2e/...
UNIT_PKGS = $(shell $(GO) list ./... | grep -v -e /internal/e2e -e /internal/testbed)

.PHONY: all build test unit fuzz e2e e2e-docker26 e2e-all chaos demo plugin plugin-enable push bench clean vet

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vpcroute .
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vpcroute-sim ./cmd/vpcroute-sim
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/vpcroute-bed ./cmd/vpcroute-bed

vet:
	$(GO) vet ./...

test: build vet unit fuzz e2e-all

unit:
	$(GO) test -race -count=1 -timeout 15m $(UNIT_PKGS)

# A short run of the plugin API's fuzzer (its seeds also run in `unit`).
FUZZTIME ?= 20s
# Each input opens a state file: on tmpfs the fuzzer is not held up by fsync.
FUZZTMP  := $(shell [ -d /dev/shm ] && echo /dev/shm || echo /tmp)
fuzz:
	TMPDIR=$(FUZZTMP) $(GO) test -run '^$$' -fuzz FuzzPluginAPI -fuzztime $(FUZZTIME) ./internal/chaos

e2e:
	$(GO) test -count=1 -p 1 -timeout 40m $(BED_PKGS)

# The same suite on Debian 13's Docker 26.1, iptables 1.8.11 and Compose v2: every ECS
# of every bed runs that root's /usr and /etc (internal/testbed, VPCROUTE_BED_ROOT).
# The root is built once (debootstrap, a few minutes) and kept in DOCKER26_ROOT.
DOCKER26_ROOT ?= /var/cache/vpcroute/trixie-root
e2e-docker26:
	./scripts/docker26-root.sh $(DOCKER26_ROOT)
	VPCROUTE_BED_ROOT=$(DOCKER26_ROOT) $(GO) test -count=1 -p 1 -timeout 40m ./internal/e2e/...

# Both releases at once (their beds have different prefixes), in about the time of
# one: the tests mostly wait on engines and packets. Each run's output is printed
# whole once both are done.
e2e-all:
	./scripts/docker26-root.sh $(DOCKER26_ROOT)
	@mkdir -p build; \
	( $(GO) test -count=1 -p 1 -timeout 40m $(BED_PKGS) > build/e2e-docker20.log 2>&1; echo $$? > build/e2e-docker20.rc ) & \
	( VPCROUTE_BED_ROOT=$(DOCKER26_ROOT) $(GO) test -count=1 -p 1 -timeout 40m ./internal/e2e/... > build/e2e-docker26.log 2>&1; \
	  echo $$? > build/e2e-docker26.rc ) & \
	wait; \
	echo "=== e2e on Debian 12's Docker 20.10"; cat build/e2e-docker20.log; \
	echo "=== e2e on Debian 13's Docker 26.1 ($(DOCKER26_ROOT))"; cat build/e2e-docker26.log; \
	test "$$(cat build/e2e-docker20.rc)" = 0 && test "$$(cat build/e2e-docker26.rc)" = 0

# The long fault campaign (issue 12): fault storms over many cycles, mutated requests,
# the fuzzer for minutes, and kill -9 at every step several times. Its figures go to
# build/chaos-report.txt, from which docs/reliability.md is written.
CHAOS_CYCLES ?= 300
chaos: build
	rm -f build/chaos-report.txt && mkdir -p build
	VPCROUTE_CHAOS_REPORT=$(CURDIR)/build/chaos-report.txt $(GO) test -count=1 -timeout 60m -run 'Test' ./internal/chaos \
		-cycles $(CHAOS_CYCLES) -hostile 20000
	TMPDIR=$(FUZZTMP) $(GO) test -run '^$$' -fuzz FuzzPluginAPI -fuzztime 5m ./internal/chaos
	VPCROUTE_CHAOS_REPORT=$(CURDIR)/build/chaos-report.txt $(GO) test -count=1 -timeout 60m -run TestKillAtEveryStep \
		./internal/e2e -kill-rounds 3
	cat build/chaos-report.txt

# The demo's bed has its own prefix, so that it never tears down a bed brought up with
# `vpcroute-bed up` (prefix vr).
DEMO_PREFIX ?= vrdemo
demo: build
	./bin/vpcroute-bed demo -prefix $(DEMO_PREFIX)

# A managed plugin directory (config.json + rootfs) built offline from this machine's
# Debian iptables; `make push` builds the same from the Dockerfile for publishing.
plugin: build
	./scripts/plugin-rootfs.sh build/plugin

# The host paths the plugin's mounts need (contrib/tmpfiles.d/vpcroute.conf keeps them
# across reboots).
plugin-enable: plugin
	install -d -m 0700 /var/lib/vpcroute
	[ -e /run/xtables.lock ] || install -m 0600 /dev/null /run/xtables.lock
	-docker plugin disable -f $(PLUGIN):$(TAG)
	-docker plugin rm -f $(PLUGIN):$(TAG)
	docker plugin create $(PLUGIN):$(TAG) build/plugin
	docker plugin enable $(PLUGIN):$(TAG)

push:
	docker build --build-arg VERSION=$(VERSION) -t $(REPO)-rootfs:$(VERSION) .
	rm -rf build/push && mkdir -p build/push/rootfs
	id=$$(docker create $(REPO)-rootfs:$(VERSION)) && docker export $$id | tar -x -C build/push/rootfs && docker rm $$id
	cp plugin/config.json build/push/
	docker plugin create $(REPO):$(TAG) build/push
	docker plugin push $(REPO):$(TAG)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./alloc ./firewall ./link ./ipam ./driver
	./scripts/bench.sh

clean:
	rm -rf bin build
