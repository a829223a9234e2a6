package kubernetes_test

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization this directory
// uses. Decoded strictly, so a field kustomize would read and this test
// does not know fails here rather than going unchecked.
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Resources  []string `json:"resources"`
	Images     []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
}

// manifests are the objects kustomization.yaml lists, decoded.
type manifests struct {
	deployment   *appsv1.Deployment
	service      *corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	pdb          *policyv1.PodDisruptionBudget
	scaledObject *kedav1alpha1.ScaledObject
}

// decodeStrict decodes YAML into v, failing on any field v's type does not
// have and on a field given twice.
func decodeStrict(raw []byte, v any) error {
	return yaml.UnmarshalStrict(raw, v)
}

// loadManifests decodes every resource of kustomization.yaml into its
// Kubernetes or KEDA API type, and fails if a YAML file of the directory
// is not listed (it would not be applied).
func loadManifests(t *testing.T) *manifests {
	t.Helper()
	raw, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := decodeStrict(raw, &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.Kind != "Kustomization" {
		t.Fatalf("kustomization.yaml: kind %q, want Kustomization", k.Kind)
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f != "kustomization.yaml" && !slices.Contains(k.Resources, f) {
			t.Errorf("%s is not listed in kustomization.yaml's resources: kubectl apply -k would leave it out", f)
		}
	}
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, f := range k.Resources {
		if err := m.add(f); err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	if m.deployment == nil || m.service == nil || m.pdb == nil || m.scaledObject == nil {
		t.Fatal("kustomization.yaml must list a Deployment, a Service, a PodDisruptionBudget and a ScaledObject")
	}
	return m
}

// add decodes one manifest file by its kind.
func (m *manifests) add(file string) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read the resource kustomization.yaml lists: %w", err)
	}
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(raw, &tm); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	var obj any
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		m.deployment = &appsv1.Deployment{}
		obj = m.deployment
	case "v1 Service":
		m.service = &corev1.Service{}
		obj = m.service
	case "v1 ConfigMap":
		cm := &corev1.ConfigMap{}
		defer func() { m.configMaps[cm.Name] = cm }()
		obj = cm
	case "v1 Secret":
		s := &corev1.Secret{}
		defer func() { m.secrets[s.Name] = s }()
		obj = s
	case "policy/v1 PodDisruptionBudget":
		m.pdb = &policyv1.PodDisruptionBudget{}
		obj = m.pdb
	case "keda.sh/v1alpha1 ScaledObject":
		m.scaledObject = &kedav1alpha1.ScaledObject{}
		obj = m.scaledObject
	default:
		return fmt.Errorf("%s: apiVersion %q kind %q is not one this test decodes", file, tm.APIVersion, tm.Kind)
	}
	if err := decodeStrict(raw, obj); err != nil {
		return fmt.Errorf("%s does not decode strictly into %s %s: %w", file, tm.APIVersion, tm.Kind, err)
	}
	return nil
}

// container returns the Deployment's one container.
func (m *manifests) container(t *testing.T) *corev1.Container {
	t.Helper()
	cs := m.deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(cs))
	}
	return &cs[0]
}

func TestDecodeStrictRejectsUnknownFields(t *testing.T) {
	// The decoder the manifests go through must be the strict one: a
	// misspelt field would otherwise be dropped without a word.
	err := decodeStrict([]byte("apiVersion: v1\nkind: Service\nspec:\n  selectr: {a: b}\n"), &corev1.Service{})
	if err == nil || !strings.Contains(err.Error(), "selectr") {
		t.Fatalf("decoding a Service with the field selectr: err %v, want one naming selectr", err)
	}
}

func TestManifestsDecode(t *testing.T) { loadManifests(t) }

func TestSelectorsMatchThePods(t *testing.T) {
	m := loadManifests(t)
	pods := labels.Set(m.deployment.Spec.Template.Labels)
	selectors := map[string]*metav1.LabelSelector{
		"the Deployment's selector":          m.deployment.Spec.Selector,
		"the PodDisruptionBudget's selector": m.pdb.Spec.Selector,
	}
	for what, ls := range selectors {
		sel, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if sel.Empty() || !sel.Matches(pods) {
			t.Errorf("%s %q does not select the Deployment's pods (labels %v)", what, sel, pods)
		}
	}
	if sel := labels.SelectorFromSet(m.service.Spec.Selector); sel.Empty() || !sel.Matches(pods) {
		t.Errorf("the Service's selector %q does not select the Deployment's pods (labels %v)", sel, pods)
	}
}

func TestProbesUseTheContainersPort(t *testing.T) {
	m := loadManifests(t)
	c := m.container(t)
	probes := map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe, "startup": c.StartupProbe}
	for what, p := range probes {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("the container has no HTTP %s probe", what)
			continue
		}
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
			return p.HTTPGet.Port.String() == cp.Name || p.HTTPGet.Port.IntValue() == int(cp.ContainerPort)
		}) {
			t.Errorf("the %s probe's port %s is not a port of the container", what, p.HTTPGet.Port.String())
		}
		if p.TimeoutSeconds >= p.PeriodSeconds {
			t.Errorf("the %s probe's timeout %d s is not below its period %d s", what, p.TimeoutSeconds, p.PeriodSeconds)
		}
	}
	if c.LivenessProbe != nil && c.ReadinessProbe != nil && c.LivenessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet != nil &&
		c.LivenessProbe.HTTPGet.Path == c.ReadinessProbe.HTTPGet.Path {
		t.Errorf("liveness and readiness both probe %s: a broker outage would restart every pod", c.LivenessProbe.HTTPGet.Path)
	}
	for _, p := range m.service.Spec.Ports {
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
			return p.TargetPort.String() == cp.Name || p.TargetPort.IntValue() == int(cp.ContainerPort)
		}) {
			t.Errorf("the Service's port %q targets %s, not a port of the container", p.Name, p.TargetPort.String())
		}
	}
}

// setting returns an environment variable's value as the Deployment sets
// it (that each reference resolves is checked by cmd/aibos-worker's
// TestKubernetesManifests, which builds the service's environment from
// them): env entries first, then envFrom sources in order (Kubernetes lets
// the later envFrom source win, and env win over all).
func (m *manifests) setting(c *corev1.Container, name string) (string, bool) {
	for _, e := range c.Env {
		if e.Name != name {
			continue
		}
		if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil {
			return secretValue(m.secrets[r.SecretKeyRef.Name], r.SecretKeyRef.Key)
		}
		if r := e.ValueFrom; r != nil && r.ConfigMapKeyRef != nil && m.configMaps[r.ConfigMapKeyRef.Name] != nil {
			v, ok := m.configMaps[r.ConfigMapKeyRef.Name].Data[r.ConfigMapKeyRef.Key]
			return v, ok
		}
		return e.Value, true
	}
	val, found := "", false
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef != nil && m.configMaps[ef.ConfigMapRef.Name] != nil {
			if v, ok := m.configMaps[ef.ConfigMapRef.Name].Data[name]; ok {
				val, found = v, true
			}
		}
		if ef.SecretRef != nil && m.secrets[ef.SecretRef.Name] != nil {
			if v, ok := secretValue(m.secrets[ef.SecretRef.Name], name); ok {
				val, found = v, true
			}
		}
	}
	return val, found
}

// secretValue returns the value of key in s, from stringData or data.
func secretValue(s *corev1.Secret, key string) (string, bool) {
	if s == nil {
		return "", false
	}
	if v, ok := s.StringData[key]; ok {
		return v, true
	}
	v, ok := s.Data[key]
	return string(v), ok
}

func TestPodRunsLockedDown(t *testing.T) {
	m := loadManifests(t)
	pod := m.deployment.Spec.Template.Spec
	c := m.container(t)
	if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Error("the pod must set runAsNonRoot and a non-zero runAsUser")
	}
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Error("the container must have a read-only root filesystem")
	}
	if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Error("the container must set allowPrivilegeEscalation: false")
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("the container requests no %s", r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Error("the container has no memory limit")
	}
	// The only writable place the service needs is the embedded store's
	// directory, and only when REDIS_URL is unset.
	redisURL, _ := m.setting(c, "REDIS_URL")
	writable := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.ConfigMap == nil && v.Secret == nil {
			writable[v.Name] = true
		}
	}
	dataDir, ok := m.setting(c, "WORKER_DATA_DIR")
	if !ok {
		dataDir = "/data" // the image's ENV
	}
	var dataMounted bool
	for _, vm := range c.VolumeMounts {
		if writable[vm.Name] && !vm.ReadOnly {
			if redisURL != "" {
				t.Errorf("volume %q is mounted writable at %s, but REDIS_URL is set: the service writes nothing to disk on Redis", vm.Name, vm.MountPath)
			}
			dataMounted = dataMounted || path.Clean(vm.MountPath) == path.Clean(dataDir)
		}
	}
	if redisURL == "" && !dataMounted {
		t.Errorf("REDIS_URL is unset, so the embedded store needs a writable volume at WORKER_DATA_DIR (%s)", dataDir)
	}
}

func TestScaledObject(t *testing.T) {
	m := loadManifests(t)
	so := m.scaledObject
	ref := so.Spec.ScaleTargetRef
	if ref == nil || ref.Name != m.deployment.Name || (ref.Kind != "" && ref.Kind != "Deployment") {
		t.Errorf("the ScaledObject scales %+v, want the Deployment %q", ref, m.deployment.Name)
	}
	// KEDA's admission webhook runs these; here they run without a cluster.
	if err := kedav1alpha1.ValidateTriggers(so.Spec.Triggers); err != nil {
		t.Error(err)
	}
	if err := kedav1alpha1.CheckReplicaCountBoundsAreValid(so); err != nil {
		t.Error(err)
	}
	if err := kedav1alpha1.CheckFallbackValid(so); err != nil {
		t.Error(err)
	}
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "prometheus" {
			t.Errorf("trigger %q is of type %q, want prometheus", tr.Name, tr.Type)
			continue
		}
		for _, k := range []string{"serverAddress", "query", "threshold"} {
			if tr.Metadata[k] == "" {
				t.Errorf("prometheus trigger %q has no %s", tr.Name, k)
			}
		}
		if th, err := strconv.ParseFloat(tr.Metadata["threshold"], 64); err != nil || th <= 0 {
			t.Errorf("prometheus trigger %q: threshold %q is not a number above 0", tr.Name, tr.Metadata["threshold"])
		}
	}
	// With the fewest replicas KEDA keeps, the budget must still let a node
	// drain evict one pod.
	minReplicas := int32(1)
	if so.Spec.MinReplicaCount != nil {
		minReplicas = *so.Spec.MinReplicaCount
	}
	pdb := m.pdb.Spec
	switch {
	case pdb.MaxUnavailable != nil:
		if pdb.MaxUnavailable.IntValue() < 1 && pdb.MaxUnavailable.String() != "100%" {
			t.Errorf("the PodDisruptionBudget's maxUnavailable %s blocks every eviction", pdb.MaxUnavailable.String())
		}
	case pdb.MinAvailable != nil:
		if pdb.MinAvailable.IntValue() >= int(minReplicas) {
			t.Errorf("the PodDisruptionBudget's minAvailable %s blocks every eviction at %d replicas", pdb.MinAvailable.String(), minReplicas)
		}
	default:
		t.Error("the PodDisruptionBudget sets neither maxUnavailable nor minAvailable")
	}
}
