package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testwait"
	"github.com/aibos/worker/service"
)

// manifestDir holds the Kubernetes manifests. Their form (strict decoding
// into the API types, selectors, KEDA's checks) is tested in that
// directory's own module; this file tests what they ask of the service.
const manifestDir = "../../deploy/kubernetes"

// afterDrain is what a shutdown needs once the drain timeout has passed:
// cancel what still runs, hand those jobs back, flush metrics and close
// the broker. The pod's termination grace must cover the drain and this.
const afterDrain = 5 * time.Second

// probe is the part of a Kubernetes probe this test reads.
type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
}

// keyRef names a key of a ConfigMap or Secret.
type keyRef struct {
	Name string `yaml:"name"`
	Key  string `yaml:"key"`
}

// kubeContainer is the part of the Deployment's container this test reads.
type kubeContainer struct {
	Args  []string `yaml:"args"`
	Ports []struct {
		ContainerPort int `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			ConfigMapKeyRef *keyRef `yaml:"configMapKeyRef"`
			SecretKeyRef    *keyRef `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	StartupProbe   *probe `yaml:"startupProbe"`
	VolumeMounts   []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
}

// kubeObject is the part of any manifest this test reads.
type kubeObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		// Deployment
		Template struct {
			Spec struct {
				TerminationGracePeriodSeconds int64           `yaml:"terminationGracePeriodSeconds"`
				Containers                    []kubeContainer `yaml:"containers"`
				Volumes                       []struct {
					Name      string `yaml:"name"`
					ConfigMap *struct {
						Name  string `yaml:"name"`
						Items []struct {
							Key  string `yaml:"key"`
							Path string `yaml:"path"`
						} `yaml:"items"`
					} `yaml:"configMap"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
		// ScaledObject
		Triggers []struct {
			Type     string            `yaml:"type"`
			Metadata map[string]string `yaml:"metadata"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

// kubeManifests are the manifests of manifestDir by kind and name.
type kubeManifests map[string]*kubeObject

func readKubeManifests(t *testing.T) kubeManifests {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", manifestDir, err)
	}
	m := kubeManifests{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var o kubeObject
		if err := yaml.Unmarshal(raw, &o); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		m[o.Kind+"/"+o.Metadata.Name] = &o
	}
	return m
}

// deployment returns the one Deployment and its one container.
func (m kubeManifests) deployment(t *testing.T) (*kubeObject, *kubeContainer) {
	t.Helper()
	for k, o := range m {
		if strings.HasPrefix(k, "Deployment/") && len(o.Spec.Template.Spec.Containers) == 1 {
			return o, &o.Spec.Template.Spec.Containers[0]
		}
	}
	t.Fatal("no Deployment with one container among the manifests")
	return nil, nil
}

// env returns the container's environment as Kubernetes builds it: the
// envFrom sources in order, then env.
func (m kubeManifests) env(t *testing.T, c *kubeContainer) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		var data map[string]string
		switch {
		case ef.ConfigMapRef != nil && m["ConfigMap/"+ef.ConfigMapRef.Name] != nil:
			data = m["ConfigMap/"+ef.ConfigMapRef.Name].Data
		case ef.SecretRef != nil && m["Secret/"+ef.SecretRef.Name] != nil:
			data = m["Secret/"+ef.SecretRef.Name].StringData
		default:
			t.Fatalf("envFrom names a ConfigMap or Secret that is not among the manifests")
		}
		for k, v := range data {
			env[k] = v
		}
	}
	for _, e := range c.Env {
		v, ok := e.Value, true
		if f := e.ValueFrom; f != nil {
			switch {
			case f.ConfigMapKeyRef != nil && m["ConfigMap/"+f.ConfigMapKeyRef.Name] != nil:
				v, ok = m["ConfigMap/"+f.ConfigMapKeyRef.Name].Data[f.ConfigMapKeyRef.Key]
			case f.SecretKeyRef != nil && m["Secret/"+f.SecretKeyRef.Name] != nil:
				v, ok = m["Secret/"+f.SecretKeyRef.Name].StringData[f.SecretKeyRef.Key]
			default:
				ok = false
			}
		}
		if !ok {
			t.Fatalf("env %s: its valueFrom names no key of a ConfigMap or Secret among the manifests", e.Name)
		}
		env[e.Name] = v
	}
	return env
}

// configFile writes the file the container's --config names, taken from
// the ConfigMap mounted there, and returns the container's args with
// --config naming that copy.
func (m kubeManifests) configFile(t *testing.T, d *kubeObject, c *kubeContainer) []string {
	t.Helper()
	args := slices.Clone(c.Args)
	i := slices.Index(args, "--config")
	if i < 0 || i+1 >= len(args) {
		t.Fatalf("the container's args %q pass no --config", args)
	}
	for _, vm := range c.VolumeMounts {
		rel, ok := strings.CutPrefix(args[i+1], strings.TrimSuffix(vm.MountPath, "/")+"/")
		if !ok {
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil || m["ConfigMap/"+v.ConfigMap.Name] == nil {
				continue
			}
			key := rel
			for _, it := range v.ConfigMap.Items {
				if it.Path == rel {
					key = it.Key
				}
			}
			text, ok := m["ConfigMap/"+v.ConfigMap.Name].Data[key]
			if !ok {
				continue
			}
			args[i+1] = filepath.Join(t.TempDir(), "aibos-worker.yaml")
			if err := os.WriteFile(args[i+1], []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
			return args
		}
	}
	t.Fatalf("--config %s is not provided by a ConfigMap among the manifests", args[i+1])
	return nil
}

// TestKubernetesManifests runs the binary as deploy/kubernetes runs it
// (its args, its config file, the environment of its ConfigMap and Secret,
// with a private Redis and a free port in place of theirs) and checks
// that the settings are ones the service knows and accepts, that the
// termination grace covers the drain timeout, that every probe path
// answers 200 and that the ScaledObject's query names metrics the service
// exports.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := readKubeManifests(t)
	d, c := m.deployment(t)
	env := m.env(t, c)
	args := m.configFile(t, d, c)
	if len(args) == 0 || args[0] != "serve" {
		t.Fatalf("the container's args %q do not run serve", args)
	}

	cfg, err := service.Load(service.LoadInput{File: args[slices.Index(args, "--config")+1], LookupEnv: func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}})
	if err != nil {
		t.Fatalf("the service does not accept the manifests' configuration: %v", err)
	}
	checkEnvNames(t, cfg, env)
	grace := time.Duration(d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace < cfg.DrainTimeout+afterDrain {
		t.Errorf("terminationGracePeriodSeconds is %v; WORKER_DRAIN_TIMEOUT is %v and the shutdown needs %v after it: the pod would be killed before it hands its jobs back",
			grace, cfg.DrainTimeout, afterDrain)
	}
	_, port, err := net.SplitHostPort(cfg.HTTPAddr)
	if err != nil || len(c.Ports) != 1 || strconv.Itoa(c.Ports[0].ContainerPort) != port {
		t.Errorf("the service listens on %q, the container declares ports %v", cfg.HTTPAddr, c.Ports)
	}

	runEnv := []string{}
	for k, v := range env {
		runEnv = append(runEnv, k+"="+v)
	}
	runEnv = append(runEnv, "REDIS_URL="+redistest.URL(t), "QUEUE_PREFIX="+redistest.Prefix(t), "WORKER_HTTP_ADDR=127.0.0.1:0")
	p := start(t, runEnv, args...)
	base := p.addr()

	for what, pr := range map[string]*probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe} {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("the container has no HTTP %s probe", what)
			continue
		}
		testwait.For(t, 30*time.Second, fmt.Sprintf("the %s probe's %s to answer 200", what, pr.HTTPGet.Path), func() bool {
			code, _ := get(t, base+pr.HTTPGet.Path)
			return code == http.StatusOK
		})
	}

	checkScalerQueries(t, m, base)

	p.signal(syscall.SIGTERM)
	if code := p.wait(grace); code != 0 {
		t.Errorf("on SIGTERM with no job running the service exited %d, want 0", code)
	}
}

// checkEnvNames fails for each variable the manifests set that the service
// does not read: a misspelt setting would be ignored without a word.
func checkEnvNames(t *testing.T, cfg *service.Config, env map[string]string) {
	t.Helper()
	known := map[string]bool{}
	for _, s := range service.Settings() {
		known[s.Env] = true
	}
	// Endpoint and callback secrets are read from the variables the config
	// file names.
	for _, jt := range cfg.JobTypes {
		if jt.HTTP != nil && jt.HTTP.SecretEnv != "" {
			known[jt.HTTP.SecretEnv] = true
		}
	}
	if cfg.Callbacks != nil && cfg.Callbacks.SecretEnv != "" {
		known[cfg.Callbacks.SecretEnv] = true
	}
	for k := range env {
		// OTEL_* configure the OpenTelemetry SDK, which reads them itself.
		if !known[k] && !strings.HasPrefix(k, "OTEL_") {
			t.Errorf("the manifests set %s, which the service does not read", k)
		}
	}
}

// checkScalerQueries parses each ScaledObject's Prometheus query and
// checks that it is one number (KEDA reads one) and that every metric it
// names is on the service's /metrics at base.
func checkScalerQueries(t *testing.T, m kubeManifests, base string) {
	t.Helper()
	code, body := get(t, base+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	served := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if line != "" && !strings.HasPrefix(line, "#") {
			served[strings.FieldsFunc(line, func(r rune) bool { return r == '{' || r == ' ' })[0]] = true
		}
	}
	queries := 0
	for k, o := range m {
		if !strings.HasPrefix(k, "ScaledObject/") {
			continue
		}
		for _, tr := range o.Spec.Triggers {
			if tr.Type != "prometheus" {
				continue
			}
			queries++
			q := tr.Metadata["query"]
			expr, err := parser.ParseExpr(q)
			if err != nil {
				t.Errorf("%s: query %q: %v", k, q, err)
				continue
			}
			if agg, ok := expr.(*parser.AggregateExpr); !ok || len(agg.Grouping) > 0 || agg.Without {
				t.Errorf("%s: query %q is not one number: aggregate it without by()", k, q)
			}
			var names []string
			parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
				if vs, ok := n.(*parser.VectorSelector); ok {
					names = append(names, vs.Name)
				}
				return nil
			})
			if len(names) == 0 {
				t.Errorf("%s: query %q names no metric", k, q)
			}
			for _, n := range names {
				if !served[n] {
					t.Errorf("%s: query %q names %s, which the service does not export", k, q, n)
				}
			}
		}
	}
	if queries == 0 {
		t.Error("no ScaledObject among the manifests has a prometheus trigger")
	}
}
