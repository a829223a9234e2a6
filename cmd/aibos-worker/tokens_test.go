package main

import (
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tokensRun runs `aibos-worker tokens args...` to its end and returns the
// exit code, stdout and stderr.
func tokensRun(t *testing.T, env []string, args ...string) (int, string, string) {
	t.Helper()
	return cliRun(t, env, append([]string{"tokens"}, args...)...)
}

// lastLine returns s's last non-empty line.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[len(lines)-1]
}

// TestTokensCLI makes the first admin token offline on a fresh data
// directory, starts serve, and manages tokens through the API with it:
// offline access is refused while the service holds the store.
func TestTokensCLI(t *testing.T) {
	t.Parallel()
	env := []string{"WORKER_DATA_DIR=" + t.TempDir(), "WORKER_HTTP_ADDR=127.0.0.1:0", "LOG_LEVEL=warn"}

	code, out, errOut := tokensRun(t, env, "create", "--name", "first-admin", "--role", "admin")
	if code != 0 {
		t.Fatalf("offline create: exit %d: %s", code, errOut)
	}
	admin := lastLine(out)
	if !strings.HasPrefix(admin, "awt_") || strings.Contains(admin, " ") {
		t.Fatalf("the last line of create is %q, want the token alone:\n%s", admin, out)
	}
	if code, _, errOut := tokensRun(t, env, "create", "--name", "x", "--role", "root"); code != 2 || !strings.Contains(errOut, `role "root"`) {
		t.Errorf("create --role root: exit %d, %q; want 2 naming the role", code, errOut)
	}

	p := start(t, append(env, "LOG_LEVEL=info"), "serve")
	base := p.addr()

	// Offline while serving: refused, saying why and what to do instead.
	if code, _, errOut := tokensRun(t, env, "list"); code != 1 || !strings.Contains(errOut, "the service is running") || !strings.Contains(errOut, "--url") {
		t.Errorf("offline list while serving: exit %d, %q; want 1 saying the service runs and to use --url", code, errOut)
	}

	api := append(env, "AIBOS_WORKER_URL="+base)
	code, out, errOut = tokensRun(t, api, "create", "--token", admin, "--name", "support", "--role", "viewer", "--tenant", "acme", "--expires", "24h", "-o", "json")
	if code != 0 {
		t.Fatalf("create through the API: exit %d: %s", code, errOut)
	}
	var created struct {
		Token, ID, Name, Role, TenantID string
		ExpiresAt                       *time.Time
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || !strings.HasPrefix(created.Token, "awt_"+created.ID+"_") || created.TenantID != "acme" || created.ExpiresAt == nil {
		t.Fatalf("create -o json printed %s (%v); want the token, its id, tenant acme and an expiry", out, err)
	}

	// The names the first release read still work.
	code, out, errOut = tokensRun(t, append(env, "WORKER_API_URL="+base, "WORKER_API_TOKEN="+admin), "list")
	if code != 0 {
		t.Fatalf("list through the API: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "first-admin") || !strings.Contains(out, "support") || strings.Contains(out, created.Token[len("awt_")+17:]) {
		t.Errorf("list through the API:\n%s\nwant both tokens and no secret", out)
	}

	// The viewer token may not manage tokens; revoked, it is refused.
	if code, _, errOut := tokensRun(t, append(api, "AIBOS_WORKER_TOKEN="+created.Token), "list"); code != 5 || !strings.Contains(errOut, "needs admin") {
		t.Errorf("list with a viewer token: exit %d, %q; want 5 and a 403's message", code, errOut)
	}
	if code, _, errOut := tokensRun(t, append(api, "AIBOS_WORKER_TOKEN="+admin), "revoke", created.ID); code != 0 {
		t.Fatalf("revoke through the API: exit %d: %s", code, errOut)
	}
	if code, _, errOut := tokensRun(t, append(api, "AIBOS_WORKER_TOKEN="+created.Token), "list"); code != 5 || !strings.Contains(errOut, "revoked") {
		t.Errorf("list with the revoked token: exit %d, %q; want 5 and a 401's message", code, errOut)
	}

	p.signal(syscall.SIGTERM)
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	// Stopped again: offline works and sees what was done through the API.
	code, out, errOut = tokensRun(t, env, "list", "-o", "json")
	if code != 0 || !strings.Contains(out, "first-admin") || strings.Contains(out, created.ID) {
		t.Errorf("offline list after serve: exit %d %s %s; want first-admin and not the revoked token", code, out, errOut)
	}
}
