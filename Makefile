# make test: what CI runs (.ci/run). Installs redis-server, promtool
# (Debian package prometheus), the PostgreSQL server (Debian package
# postgresql) and Chromium (for the dashboard's browser tests) if missing
# (apt-get), checks formatting and vet, runs every test with the race
# detector, builds bench/, and checks the Kubernetes manifests and the
# Dockerfile (deploy/kubernetes, its own module).
GO ?= go
GOBIN := $(shell $(GO) env GOPATH)/bin
STATICCHECK := $(GOBIN)/staticcheck

.PHONY: test check fmt vet staticcheck run cover integration bench bench-scale bench-scale-smoke bench-queues example soak deploy-check docker-check faults screenshots test-rotate test-rotate-race

test: fmt vet
	./scripts/ensure-redis.sh
	./scripts/ensure-promtool.sh
	./scripts/ensure-postgres.sh
	./scripts/ensure-chromium.sh
	./scripts/ensure-pdftotext.sh
	$(GO) test -race -count=1 -timeout 20m ./...
	@if [ -f bench/go.mod ]; then cd bench && $(GO) vet ./... && $(GO) vet -tags servicebench ./cmd/compare && $(GO) test -count=1 ./...; fi
	$(MAKE) deploy-check

# make deploy-check: deploy/kubernetes' own module, which decodes the
# manifests into the Kubernetes and KEDA API types (kept out of the main
# go.mod) and runs the Dockerfile's go build line. Without -race: the test
# starts no goroutines, and client-go built twice would cost CI minutes.
# What the manifests ask of the service itself is checked by
# cmd/aibos-worker's TestKubernetesManifests, in the main run.
deploy-check:
	cd deploy/kubernetes && $(GO) vet ./... && $(GO) test -count=1 ./...

# make docker-check: the Dockerfile alone: its values, and its go build line
# run on the files .dockerignore lets through (static binary, runs). Docker
# is not needed; the image is not built.
docker-check:
	cd deploy/kubernetes && $(GO) test -count=1 -run '^TestDockerfile' -v ./...

# make check: gofmt, go vet and staticcheck (installed with go install when
# missing). govulncheck is left to your own CI: it needs vuln.go.dev, which
# these build machines cannot reach.
check: fmt vet staticcheck

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

staticcheck:
	@test -x $(STATICCHECK) || $(GO) install honnef.co/go/tools/cmd/staticcheck@latest
	$(STATICCHECK) ./...

# make run: the service on the embedded store under ./data, logs as text,
# HTTP on :8080. Pass flags with ARGS, e.g. make run ARGS='--config aibos-worker.yaml'.
# The first build compiles the embedded SQLite: a few minutes on a small machine.
run:
	LOG_FORMAT=$${LOG_FORMAT:-text} $(GO) run ./cmd/aibos-worker serve $(ARGS)

# make cover: every test with coverage; prints the total and writes
# cover.out (go tool cover -html=cover.out to browse it).
cover:
	./scripts/ensure-redis.sh
	./scripts/ensure-postgres.sh
	$(GO) test -count=1 -timeout 20m -covermode=atomic -coverprofile=cover.out ./...
	$(GO) tool cover -func=cover.out | tail -n 1

# make integration: the tests that need real services or processes, with
# CI=true so that none can skip: every package whose tests start a
# redis-server (internal/redistest), a PostgreSQL server (internal/pgtest)
# or another process (os/exec): the Redis
# broker, the multi-process scheduler and crash tests, and the end-to-end
# tests of the aibos-worker binary.
integration:
	./scripts/ensure-redis.sh
	./scripts/ensure-postgres.sh
	CI=true $(GO) test -race -count=1 -timeout 20m $$($(GO) list -f '{{.ImportPath}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... \
		| awk '/github.com\/aibos\/worker\/internal\/(redistest|pgtest)|os\/exec/ {print $$1}')

# make bench: the brokers' micro-benchmarks. The side-by-side comparison
# with asynq and BullMQ is in bench/ (see the README).
bench:
	./scripts/ensure-redis.sh
	$(GO) test -run '^$$' -bench . -benchtime 2s ./broker/redisbroker/ ./broker/sqlitebroker/

# make bench-scale: issue 24's scale curves (bench/cmd/compare -scale) at
# full size on Redis and the embedded store: 1,000 to 1,000,000 pending
# jobs, 1 to 1,000 queues (busy and idle), 1 to 10,000 tenants, 1 to 50
# Manager processes. Tables on stdout, PNGs in bench/scale/. Takes 10-20
# minutes and a few GB of disk and memory. bench-scale-smoke runs every
# curve end to end at tiny sizes with the race detector (about a minute on
# 2 cores: the embedded store and the plots are slow under it); make test
# runs bench/'s tests without it (about 10 s), to keep CI short.
bench-scale:
	./scripts/ensure-redis.sh
	cd bench && $(GO) run ./cmd/compare -scale -v $(ARGS)

bench-scale-smoke:
	./scripts/ensure-redis.sh
	cd bench && $(GO) test -race -count=1 -run 'Scale|Counter' -v ./cmd/compare/

# make bench-queues: one Manager serving 1 to 1,000 queues on each engine,
# idle (Redis commands and CPU per second) and busy (enqueue-to-start p99,
# jobs/s); about five minutes (issue 24).
bench-queues:
	./scripts/ensure-redis.sh
	$(GO) test -run '^$$' -bench 'ManyQueues' -benchtime 1x -timeout 20m .

example:
	$(GO) run ./examples/invoices

# make screenshots: the dashboard's browser tests, rewriting the committed
# screenshots in docs/screenshots/ (a normal test run takes them into a
# temporary directory, so that make test leaves the tree clean).
screenshots:
	./scripts/ensure-chromium.sh
	DASHBOARD_SCREENSHOTS=1 $(GO) test -count=1 -run '^TestBrowser$$' ./admin/dashboard/

# make soak: 5 minutes of no-op jobs on a private redis-server at full speed
# with the default retention; prints the completed-job count and used_memory
# figures and fails if they leave their bars (see BenchmarkSoakRedis).
soak:
	./scripts/ensure-redis.sh
	$(GO) test -run '^$$' -bench '^BenchmarkSoakRedis$$' -benchtime 1x -timeout 20m . -soak 5m

# make test-rotate: key rotation at full size: 10,000 jobs across states
# re-sealed while a Manager processes, on Redis and SQLite (CI runs 400).
test-rotate:
	./scripts/ensure-redis.sh
	WORKER_ROTATE_JOBS=10000 $(GO) test -count=1 -timeout 30m -run '^TestRotateKeysWhileProcessing$$' -v .

# make test-rotate-race: the same under the race detector (about ten times
# slower; the acceptance run of issue 18).
test-rotate-race:
	./scripts/ensure-redis.sh
	WORKER_ROTATE_JOBS=10000 $(GO) test -race -count=1 -timeout 60m -run '^TestRotateKeysWhileProcessing$$' -v .

# make faults: the fault suite (internal/faults) at full size against real
# worker processes and private redis-servers: workers SIGKILLed, SIGTERMed
# and SIGSTOPped, Redis killed, emptied and cut off, 50 racing workers,
# cron under kills, clock skew, poison jobs. Writes RELIABILITY.md. About 15 minutes on
# 2 cores; a small smoke of it runs in make test.
faults:
	./scripts/ensure-redis.sh
	$(GO) test -count=1 -timeout 40m -run '^TestFaults$$' ./internal/faults/ -faults.report=$(CURDIR)/RELIABILITY.md
