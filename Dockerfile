# The aibos-worker service image: a static binary on distroless, run as a
# non-root user. Build: docker build -t aibos-worker .
#
# deploy/kubernetes/manifests_test.go runs this file's `go build` line on
# the files .dockerignore lets through and checks the binary is static, so
# a change here is tested without Docker.

FROM golang:1.26-bookworm AS build
WORKDIR /src
# Dependencies first: this layer is rebuilt only when go.mod or go.sum
# change, not at every source edit.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# CGO_ENABLED=0: the embedded store is modernc.org/sqlite, pure Go, so the
# binary needs no libc and runs on a base image without one.
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/aibos-worker ./cmd/aibos-worker
# The embedded store's directory, owned by the user the service runs as:
# distroless has no shell to create it in the final stage.
RUN mkdir -p /data

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /src/bin/aibos-worker /aibos-worker
COPY --from=build --chown=65532:65532 /data /data
# Numeric, so that Kubernetes' runAsNonRoot can check it without a passwd
# lookup: 65532 is distroless' nonroot user.
USER 65532:65532
# The embedded store is used when REDIS_URL is unset; mount a volume here
# to keep it across restarts.
ENV WORKER_DATA_DIR=/data WORKER_HTTP_ADDR=:8080
VOLUME ["/data"]
# /metrics, /livez, /readyz, /health and the API under /api/v1.
EXPOSE 8080
ENTRYPOINT ["/aibos-worker"]
CMD ["serve"]
