package main

import (
	"context"
	"crypto/tls"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/smtptest"
	"github.com/aibos/worker/notify"
	"github.com/aibos/worker/service"
)

// TestSMTPCAFile sends one notification through a real STARTTLS server on
// loopback whose certificate a private authority signed: with that
// authority in SMTP_CA_FILE the message arrives over TLS; without it the
// send fails as untrusted and the server gets nothing.
func TestSMTPCAFile(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	pair, err := tls.LoadX509KeyPair(certs.ServerCertFile, certs.ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := smtptest.Start(t, smtptest.Options{Username: "mailer", Password: "s3cret",
		TLS: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}})
	vars := map[string]string{"SMTP_HOST": srv.Host, "SMTP_PORT": strconv.Itoa(srv.Port), "SMTP_USER": "mailer",
		"SMTP_PASSWORD": "s3cret", "SMTP_FROM": "Books <books@books.test>"}
	send := func(caFile string) error {
		vars["SMTP_CA_FILE"] = caFile
		cfg, err := service.Load(service.LoadInput{LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok && v != "" }})
		if err != nil {
			t.Fatal(err)
		}
		roots, err := cfg.SMTPRootCAs()
		if err != nil {
			t.Fatal(err)
		}
		s, err := smtpSender(cfg, roots)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return s.Send(ctx, &notify.Message{MessageID: notify.MessageID("t1", "job-1", "books.test"), From: cfg.SMTPFrom,
			To: []string{"customer@example.test"}, Subject: "Invoice INV-1", Body: "Your invoice INV-1.\n", Date: time.Now()})
	}

	if err := send(""); err == nil || !strings.Contains(err.Error(), "not trusted") {
		t.Fatalf("send with the system's authorities: %v; want the private certificate not trusted", err)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("the server got %d messages from a sender that did not trust it, want none", n)
	}
	if err := send(certs.CAFile); err != nil {
		t.Fatalf("send with SMTP_CA_FILE naming the server's authority: %v", err)
	}
	got := srv.Wait(t, 1, 30*time.Second)[0]
	if got.TLS == nil || !got.TLS.HandshakeComplete || got.Subject != "Invoice INV-1" {
		t.Fatalf("the server got %q, TLS %v; want the invoice over STARTTLS", got.Subject, got.TLS != nil)
	}
}

// TestSMTPCAFileChecked: an SMTP_CA_FILE that cannot work stops the start
// with a *service.ConfigError naming it, before any mail is sent.
func TestSMTPCAFileChecked(t *testing.T) {
	t.Parallel()
	certs := redistest.NewCerts(t)
	host := []string{"SMTP_HOST=mail.example.test", "SMTP_FROM=books@books.test"}
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		vars []string
		want string
	}{
		{"missing file", append(host, "SMTP_CA_FILE="+certs.CAFile+".missing"),
			`SMTP_CA_FILE="` + certs.CAFile + `.missing": cannot be read: open ` + certs.CAFile + ".missing: no such file or directory"},
		{"file without a certificate", append(host, "SMTP_CA_FILE="+certs.ServerKeyFile),
			`SMTP_CA_FILE="` + certs.ServerKeyFile + `": holds no PEM certificate`},
		{"a directory", append(host, "SMTP_CA_FILE="+dir),
			`SMTP_CA_FILE="` + dir + `": cannot be read: read ` + dir + `: is a directory`},
		{"without SMTP_HOST", []string{"SMTP_CA_FILE=" + certs.CAFile},
			`SMTP_CA_FILE="` + certs.CAFile + `": is for the STARTTLS of SMTP_HOST, which is unset`},
		{"with STARTTLS off", append(host, "SMTP_STARTTLS=none", "SMTP_CA_FILE="+certs.CAFile),
			`SMTP_CA_FILE="` + certs.CAFile + `": is for STARTTLS, but SMTP_STARTTLS is none`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{}
			for _, v := range tc.vars {
				k, val, _ := strings.Cut(v, "=")
				vars[k] = val
			}
			cfg, err := service.Load(service.LoadInput{LookupEnv: func(k string) (string, bool) { v, ok := vars[k]; return v, ok }})
			if err != nil {
				t.Fatal(err)
			}
			pool, err := cfg.SMTPRootCAs()
			if pool != nil || !service.IsConfigError(err) || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("SMTPRootCAs: %v; want one line starting %q", err, tc.want)
			}
		})
	}
}
