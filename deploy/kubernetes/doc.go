// Package kubernetes holds no code: its tests check the manifests of this
// directory and the repository's Dockerfile. It is a module of its own so
// that the Kubernetes and KEDA API types it decodes into stay out of the
// service's go.mod.
//
// The tests decode every manifest strictly (an unknown or misspelt field
// is an error) into the Kubernetes API types and KEDA's ScaledObject type,
// check that the manifests agree with each other (selectors, names, ports,
// references), run KEDA's own ScaledObject checks, and run the
// Dockerfile's go build line on the files .dockerignore lets through.
// What the manifests ask of the service itself (probe paths, settings, the
// config file at --config, the drain timeout, the metric the ScaledObject
// queries) is checked
// against the real binary by cmd/aibos-worker's TestKubernetesManifests.
package kubernetes
