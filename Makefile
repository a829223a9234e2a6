# make test: what CI runs. Installs redis-server if missing (apt-get), checks
# formatting and vet, runs every test with the race detector, builds bench/.
GO ?= go

.PHONY: test check fmt vet example bench

test: check
	./scripts/ensure-redis.sh
	$(GO) test -race -count=1 -timeout 20m ./...
	@if [ -f bench/go.mod ]; then cd bench && $(GO) vet ./...; fi

check: fmt vet

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

example:
	$(GO) run ./examples/invoices
