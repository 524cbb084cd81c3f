# capstan — build and test. `make test` is the one command CI runs.
GO ?= go
STATICCHECK_VERSION := v0.8.2

.PHONY: test setup lint unit build image release fuzz bench-ingest clean

## test: everything CI checks — setup, formatting, vet, staticcheck, all tests with -race.
test: setup lint unit

## setup: install what the end-to-end tests need (npm packages, Debian's chromium); idempotent.
setup:
	@bash scripts/setup-e2e.sh

## lint: gofmt, go vet and staticcheck.
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './e2e/node_modules/*')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

## unit: every Go test, race detector on (includes e2e/ with the real binary).
unit:
	$(GO) test -race -count=1 -timeout 20m ./...

## build: the capstan binary.
build:
	$(GO) build -o capstan ./cmd/capstan

## image: the container image (Dockerfile, FROM scratch) from a static capstan built here, with Docker when a daemon answers, else Podman (scripts/image.sh).
IMAGE ?= capstan:dev
image:
	@GO=$(GO) IMAGE=$(IMAGE) bash scripts/image.sh

## release: static linux and darwin (amd64, arm64) archives and SHA256SUMS in dist/ (scripts/release.sh).
release:
	@GO=$(GO) bash scripts/release.sh

## fuzz: run every fuzz target of the module (scripts/fuzz.sh finds them), FUZZTIME each (default 30s).
FUZZTIME ?= 30s
fuzz:
	@GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## bench-ingest: the ingest load benchmark (see bench/README.md).
bench-ingest:
	bash bench/ingest.sh

clean:
	rm -rf capstan data .image dist
