package metrics

import (
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultNamespace prefixes every metric name unless a Config says
// otherwise.
const DefaultNamespace = "aibos_worker"

// NewBuildInfo returns the gauge <ns>_build_info, always 1, whose labels
// say what is running: version (the main module's), revision (the VCS
// commit, when the build recorded it) and goversion. namespace defaults
// to "aibos_worker".
func NewBuildInfo(namespace string) prometheus.Collector {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	version, revision, goVersion := "unknown", "unknown", "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if bi.Main.Version != "" {
			version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				revision = s.Value
			}
		}
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help:        "Always 1; the labels say which build of aibos-worker is running.",
		ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": goVersion}})
	g.Set(1)
	return g
}
