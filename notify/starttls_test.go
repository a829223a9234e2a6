package notify_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aibos/worker/internal/redistest"
	"github.com/aibos/worker/internal/smtptest"
	"github.com/aibos/worker/notify"
)

// startTLSServer starts an SMTP server offering STARTTLS with a
// certificate for 127.0.0.1 signed by an authority the test generates,
// and returns it with a pool trusting that authority.
func startTLSServer(t *testing.T, o smtptest.Options) (*smtptest.Server, *x509.CertPool) {
	t.Helper()
	certs := redistest.NewCerts(t)
	pair, err := tls.LoadX509KeyPair(certs.ServerCertFile, certs.ServerKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(certs.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		t.Fatal("the test authority's certificate does not parse")
	}
	o.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	return smtptest.Start(t, o), pool
}

// TestSTARTTLSCarriesTheMail: with starttls mandatory (the default with a
// username) or opportunistic, and the server's authority trusted, the
// message and the password go over TLS, and the server sees the message
// on a TLS connection.
func TestSTARTTLSCarriesTheMail(t *testing.T) {
	for _, policy := range []string{"", notify.StartTLSMandatory, notify.StartTLSOpportunistic} {
		t.Run("starttls="+policy, func(t *testing.T) {
			srv, pool := startTLSServer(t, smtptest.Options{Username: "mailer", Password: "s3cret"})
			s, err := notify.NewSMTP(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, Username: "mailer", Password: "s3cret",
				StartTLS: policy, RootCAs: pool, Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Send(context.Background(), message("job-tls")); err != nil {
				t.Fatalf("send over STARTTLS with the authority trusted: %v", err)
			}
			got := srv.Wait(t, 1, 10*time.Second)[0]
			if got.TLS == nil || !got.TLS.HandshakeComplete {
				t.Fatal("the message arrived in the clear, want over STARTTLS")
			}
			if got.TLS.Version < tls.VersionTLS12 {
				t.Errorf("TLS version %x, want 1.2 or later", got.TLS.Version)
			}
		})
	}
}

// TestSTARTTLSRefusesAnUntrustedCertificate: a server whose certificate no
// trusted authority signed gets nothing, under either policy that uses
// TLS (opportunistic never falls back to cleartext after a failed
// handshake), and the error says the certificate is not trusted.
func TestSTARTTLSRefusesAnUntrustedCertificate(t *testing.T) {
	for _, policy := range []string{notify.StartTLSMandatory, notify.StartTLSOpportunistic} {
		t.Run("starttls="+policy, func(t *testing.T) {
			srv, _ := startTLSServer(t, smtptest.Options{})
			other := x509.NewCertPool() // trusts nothing the server has
			for _, roots := range []*x509.CertPool{nil, other} {
				s, err := notify.NewSMTP(notify.SMTPConfig{Host: srv.Host, Port: srv.Port, StartTLS: policy, RootCAs: roots, Timeout: 10 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				m := message("job-untrusted")
				err = s.Send(context.Background(), m)
				if err == nil {
					t.Fatal("send to a server with an untrusted certificate succeeded")
				}
				if !strings.Contains(err.Error(), "certificate is not trusted") || !strings.Contains(err.Error(), m.MessageID) {
					t.Errorf("error %q does not name the message and say the certificate is not trusted", err)
				}
			}
			if n := len(srv.Messages()); n != 0 {
				t.Fatalf("%d messages reached a server whose certificate is not trusted", n)
			}
		})
	}
}
