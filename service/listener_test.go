package service

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/testwait"
)

// tlsService starts a service on the embedded store serving HTTPS with
// certs' server pair (copied, so the test can replace it), with vars, and
// returns it with a viewer and an operator token, the copied pair's paths
// and a client trusting certs' authority.
func tlsService(t *testing.T, certs *redistest.Certs, vars ...string) (svc *Service, tok map[string]string, certFile, keyFile string, client *http.Client) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = dir+"/tls.crt", dir+"/tls.key"
	copyFile(t, certs.ServerCertFile, certFile)
	copyFile(t, certs.ServerKeyFile, keyFile)
	ctx := context.Background()
	cfg, err := Load(LoadInput{LookupEnv: env(append(vars, "WORKER_DATA_DIR="+dir, "WORKER_HTTP_ADDR=127.0.0.1:0",
		"WORKER_TLS_CERT_FILE="+certFile, "WORKER_TLS_KEY_FILE="+keyFile)...)})
	if err != nil {
		t.Fatal(err)
	}
	svc, err = New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tok = map[string]string{}
	for _, role := range []admin.Role{admin.RoleViewer, admin.RoleOperator} {
		if tok[string(role)], _, err = svc.Tokens().Create(ctx, admin.TokenSpec{Name: string(role), Role: role}); err != nil {
			t.Fatal(err)
		}
	}
	runService(t, svc)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: certs.ClientConfig().RootCAs}}
	t.Cleanup(tr.CloseIdleConnections)
	return svc, tok, certFile, keyFile, &http.Client{Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestListenerTLS: with a certificate configured the service's listener
// speaks HTTPS (and not plain HTTP), serves a replaced certificate from
// the next connection on without a restart, and the dashboard's session
// cookie is Secure.
func TestListenerTLS(t *testing.T) {
	certs := redistest.NewCerts(t)
	svc, tok, certFile, keyFile, client := tlsService(t, certs)
	base := "https://" + svc.Addr().String()

	resp, err := client.Get(base + "/livez")
	if err != nil {
		t.Fatalf("GET /livez over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.TLS == nil {
		t.Fatalf("GET /livez: %d, tls %v; want 200 over TLS", resp.StatusCode, resp.TLS != nil)
	}
	if resp, err := http.Get("http://" + svc.Addr().String() + "/livez"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP is served next to TLS")
		}
	}

	t.Run("session cookie is Secure", func(t *testing.T) {
		resp, err := client.Get(base + "/login")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
		if m == nil {
			t.Fatalf("the login page has no csrf field:\n%s", page)
		}
		req, _ := http.NewRequest("POST", base+"/login", strings.NewReader(url.Values{"csrf": {string(m[1])}, "token": {tok["viewer"]}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for _, c := range resp.Cookies() {
			req.AddCookie(c)
		}
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		var session *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "aibos_session" {
				session = c
			}
		}
		if session == nil || !session.Secure || !session.HttpOnly {
			t.Fatalf("login over TLS: %d, session cookie %+v; want it Secure and HttpOnly", resp.StatusCode, session)
		}
	})

	t.Run("a replaced certificate is served", func(t *testing.T) {
		renewed := redistest.NewCerts(t)
		copyFile(t, renewed.ServerKeyFile, keyFile)
		copyFile(t, renewed.ServerCertFile, certFile)
		pool := x509.NewCertPool()
		pem, _ := os.ReadFile(renewed.CAFile)
		pool.AppendCertsFromPEM(pem)
		testwait.For(t, 10*time.Second, "a handshake with the renewed certificate", func() bool {
			c, err := tls.Dial("tcp", svc.Addr().String(), &tls.Config{RootCAs: pool})
			if err != nil {
				return false
			}
			c.Close()
			return true
		})
	})
}

// TestListenerLimits: through a real listener, an enqueue body over
// WORKER_API_MAX_ENQUEUE_BYTES is a 413 in the API's error shape while a
// batch of the same size fits WORKER_API_MAX_BATCH_BYTES; headers over
// WORKER_HTTP_MAX_HEADER_BYTES are refused; a client that never finishes
// its headers is cut off after WORKER_HTTP_READ_HEADER_TIMEOUT.
func TestListenerLimits(t *testing.T) {
	certs := redistest.NewCerts(t)
	svc, tok, _, _, client := tlsService(t, certs, "WORKER_API_MAX_ENQUEUE_BYTES=2048", "WORKER_API_MAX_BATCH_BYTES=65536",
		"WORKER_HTTP_MAX_HEADER_BYTES=4096", "WORKER_HTTP_READ_HEADER_TIMEOUT=2000")
	base := "https://" + svc.Addr().String()
	post := func(path, body string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok["operator"])
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("POST %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	data := strings.Repeat("a", 3000)
	resp, body := post("/api/v1/queues/other/jobs", `{"type":"x","delay":60000,"data":"`+data+`"}`)
	var e struct{ Error admin.Error }
	if err := json.Unmarshal(body, &e); resp.StatusCode != http.StatusRequestEntityTooLarge || err != nil || e.Error.Code != admin.CodeTooLarge || !strings.Contains(e.Error.Message, "2048") {
		t.Fatalf("enqueue of a 3 kB body: %d %.200s; want 413 too_large naming 2048 bytes", resp.StatusCode, body)
	}
	if resp, body := post("/api/v1/queues/other/jobs/batch", `{"jobs":[{"type":"x","delay":60000,"data":"`+data+`"}]}`); resp.StatusCode != http.StatusCreated {
		t.Fatalf("batch of a 3 kB body: %d %.200s; want 201 under its 64 kB limit", resp.StatusCode, body)
	}
	if resp, _ := post("/api/v1/queues/other/jobs", `{"type":"x"}`, "X-Padding", strings.Repeat("p", 32<<10)); resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("32 kB of headers: %d; want 431", resp.StatusCode)
	}

	conn, err := tls.Dial("tcp", svc.Addr().String(), certs.ClientConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /livez HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = bufio.NewReader(conn).ReadString('\n')
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a request whose headers never end was still open after 20s; want it closed after 2s")
	}
}

// TestListenerTLSSettingsChecked: a certificate without its key, or a pair
// that does not load, stops New with a *ConfigError naming the setting.
func TestListenerTLSSettingsChecked(t *testing.T) {
	certs := redistest.NewCerts(t)
	for _, tc := range []struct {
		vars []string
		want string
	}{
		{[]string{"WORKER_TLS_CERT_FILE=" + certs.ServerCertFile}, "WORKER_TLS_CERT_FILE: and WORKER_TLS_KEY_FILE go together"},
		{[]string{"WORKER_TLS_CERT_FILE=" + certs.ServerCertFile, "WORKER_TLS_KEY_FILE=" + certs.KeyFile},
			"with WORKER_TLS_KEY_FILE is no usable PEM certificate and key: tls: private key does not match public key"},
	} {
		cfg, err := Load(LoadInput{LookupEnv: env(append(tc.vars, "WORKER_DATA_DIR="+t.TempDir())...)})
		if err != nil {
			t.Fatal(err)
		}
		svc, err := New(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err == nil {
			_ = svc.Close()
		}
		if !IsConfigError(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("new with %v: %v; want a config error with %q", tc.vars, err, tc.want)
		}
	}
}
