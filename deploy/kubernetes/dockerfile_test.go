package kubernetes_test

import (
	"bufio"
	"debug/elf"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// repoRoot is the main module's directory: the image's build context.
const repoRoot = "../.."

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd  string // upper case: FROM, RUN, COPY...
	args string
}

// stage is one FROM and the instructions after it.
type stage struct {
	from, name string
	ins        []instruction
}

// find returns the stage's instructions of cmd.
func (s stage) find(cmd string) []string {
	var out []string
	for _, in := range s.ins {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// parseDockerfile reads the repository's Dockerfile. It understands what
// that file uses (comments, continuation lines, FROM ... AS name), which is
// all a check of its values needs; BuildKit's parser would bring BuildKit.
func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var stages []stage
	var buf string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && buf == "") {
			continue
		}
		if more, ok := strings.CutSuffix(line, "\\"); ok {
			buf += more + " "
			continue
		}
		line, buf = buf+line, ""
		cmd, args, _ := strings.Cut(line, " ")
		cmd, args = strings.ToUpper(cmd), strings.TrimSpace(args)
		if cmd == "FROM" {
			f := strings.Fields(args)
			st := stage{from: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				st.name = f[2]
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			t.Fatalf("Dockerfile: %s before the first FROM", cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, instruction{cmd: cmd, args: args})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(stages) != 2 {
		t.Fatalf("Dockerfile has %d stages, want 2: a Go builder and the final image", len(stages))
	}
	return stages
}

// goBuild returns the build stage's RUN line that runs go build, and the
// path of the binary it writes, relative to the stage's WORKDIR.
func goBuild(t *testing.T, build stage) (run, out string) {
	t.Helper()
	for _, r := range build.find("RUN") {
		if !strings.Contains(r, "go build") {
			continue
		}
		f := strings.Fields(r)
		if i := slices.Index(f, "-o"); i >= 0 && i+1 < len(f) {
			return r, f[i+1]
		}
		t.Fatalf("Dockerfile: %q names no -o output", r)
	}
	t.Fatal("Dockerfile: the build stage has no RUN ... go build")
	return "", ""
}

var goDirective = regexp.MustCompile(`(?m)^go (\d+\.\d+)`)

func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	build, final := stages[0], stages[1]
	m := loadManifests(t)
	c := m.container(t)

	mod, err := os.ReadFile(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	want := goDirective.FindSubmatch(mod)
	if want == nil || !strings.HasPrefix(build.from, "golang:"+string(want[1])) {
		t.Errorf("the builder is %s; go.mod needs Go %s", build.from, want[1])
	}
	run, out := goBuild(t, build)
	if !strings.Contains(run, "CGO_ENABLED=0") {
		t.Errorf("the go build line %q does not set CGO_ENABLED=0: the binary would need libc", run)
	}
	wd := build.find("WORKDIR")
	if len(wd) != 1 {
		t.Fatalf("the build stage has %d WORKDIRs, want 1", len(wd))
	}
	built := path.Join(wd[0], out)
	var entry string
	for _, cp := range final.find("COPY") {
		f := strings.Fields(cp)
		if f[0] == "--from="+build.name && f[1] == built {
			entry = f[len(f)-1]
		}
	}
	if entry == "" {
		t.Errorf("the final stage does not COPY --from=%s %s, the binary go build writes", build.name, built)
	}
	if ep := final.find("ENTRYPOINT"); len(ep) != 1 || ep[0] != `["`+entry+`"]` {
		t.Errorf("ENTRYPOINT %q, want [%q], the binary copied in", ep, entry)
	}

	user := final.find("USER")
	if len(user) != 1 {
		t.Fatalf("the final stage has %d USER lines, want 1", len(user))
	}
	uid, err := strconv.ParseInt(strings.Split(user[0], ":")[0], 10, 64)
	if err != nil || uid == 0 {
		t.Errorf("USER %s: want a numeric non-root user, which runAsNonRoot can check", user[0])
	}
	if sc := m.deployment.Spec.Template.Spec.SecurityContext; sc != nil && sc.RunAsUser != nil && *sc.RunAsUser != uid {
		t.Errorf("the image runs as %d, the Deployment as %d", uid, *sc.RunAsUser)
	}

	env := map[string]string{}
	for _, e := range final.find("ENV") {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
	}
	if vol := final.find("VOLUME"); len(vol) != 1 || vol[0] != `["`+env["WORKER_DATA_DIR"]+`"]` {
		t.Errorf("VOLUME %q does not hold WORKER_DATA_DIR (%s), where the embedded store is kept", vol, env["WORKER_DATA_DIR"])
	}
	port := strings.TrimPrefix(env["WORKER_HTTP_ADDR"], ":")
	if expose := final.find("EXPOSE"); len(expose) != 1 || expose[0] != port {
		t.Errorf("EXPOSE %q, want the port of WORKER_HTTP_ADDR (%s)", expose, port)
	}
	if len(c.Ports) != 1 || strconv.Itoa(int(c.Ports[0].ContainerPort)) != port {
		t.Errorf("the Deployment's container ports %v, want the image's port %s", c.Ports, port)
	}
}

// TestDockerfileBuild runs the Dockerfile's go build line, as the builder
// stage would, on a copy of the files .dockerignore lets into the build
// context, and checks the binary is static and runs. Docker itself is not
// needed, and the image is not built.
func TestDockerfileBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the service: not with -short")
	}
	run, out := goBuild(t, parseDockerfile(t)[0])
	ctx := buildContext(t)
	cmd := exec.Command("sh", "-c", run)
	cmd.Dir = ctx
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s, in the build context .dockerignore leaves: %v\n%s", run, err, b)
	}
	bin := filepath.Join(ctx, out)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatalf("the built binary: %v", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (%v): it will not start on a base image without libc", p.Type)
		}
	}
	if b, err := exec.Command(bin, "serve", "--help").CombinedOutput(); err != nil || !strings.Contains(string(b), "--drain-timeout") {
		t.Errorf("%s serve --help: %v\n%s", out, err, b)
	}
}

// buildContext copies the repository's files that .dockerignore does not
// exclude, with Docker's own matcher, into a temporary directory.
func buildContext(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	patterns, err := ignorefile.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	dst := t.TempDir()
	err = filepath.WalkDir(repoRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil || rel == "." {
			return err
		}
		skip, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		switch {
		case skip && d.IsDir() && !pm.Exclusions():
			return filepath.SkipDir
		case skip:
			return nil
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatalf("copy the build context: %v", err)
	}
	return dst
}
