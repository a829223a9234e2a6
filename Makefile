# make test: what CI runs. Installs redis-server if missing (apt-get), checks
# formatting and vet, runs every test with the race detector, builds bench/.
GO ?= go

.PHONY: test check fmt vet example bench soak

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

# make soak: 5 minutes of no-op jobs on a private redis-server at full speed
# with the default retention; prints the completed-job count and used_memory
# figures and fails if they leave their bars (see BenchmarkSoakRedis).
soak:
	./scripts/ensure-redis.sh
	$(GO) test -run '^$$' -bench '^BenchmarkSoakRedis$$' -benchtime 1x -timeout 20m . -soak 5m
