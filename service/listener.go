package service

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
)

// httpServer returns the server of the service's own listener, with the
// configured request limits and, when a certificate is configured
// (s.certs), TLS.
func (s *Service) httpServer(h http.Handler) *http.Server {
	c := s.cfg
	srv := &http.Server{Handler: h,
		ReadHeaderTimeout: c.HTTPReadHeaderTimeout, ReadTimeout: c.HTTPReadTimeout,
		WriteTimeout: c.HTTPWriteTimeout, IdleTimeout: c.HTTPIdleTimeout,
		MaxHeaderBytes: c.HTTPMaxHeaderBytes,
		ErrorLog:       slog.NewLogLogger(s.log.With("component", "http").Handler(), slog.LevelWarn)}
	if s.certs != nil {
		srv.TLSConfig = &tls.Config{GetCertificate: s.certs.get, MinVersion: tls.VersionTLS12}
	}
	return srv
}

// certReloader serves the listener's certificate from its PEM files and
// loads them again when either changes, so that a renewed certificate is
// served without a restart. Two stats per handshake are next to nothing
// beside the handshake itself. A pair that does not load (say, the
// certificate written, the key not yet) leaves the last good one served,
// and is tried again at the next handshake.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu     sync.Mutex
	cert   *tls.Certificate
	stamp  string // the files' sizes and times when cert was loaded
	failed string // the stamp of the last pair that did not load
}

// newCertReloader loads the pair; a pair that does not load is a
// *ConfigError.
func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	stamp, err := r.fileStamp()
	if err == nil {
		err = r.load(stamp)
	}
	if err != nil {
		return nil, &ConfigError{Name: "WORKER_TLS_CERT_FILE", Value: certFile, Quote: true,
			Want: "with WORKER_TLS_KEY_FILE is no usable PEM certificate and key: " + reason(err)}
	}
	return r, nil
}

// fileStamp returns the two files' sizes and modification times.
func (r *certReloader) fileStamp() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		st, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		stamp += fmt.Sprintf("%d@%d;", st.Size(), st.ModTime().UnixNano())
	}
	return stamp, nil
}

func (r *certReloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp = &cert, stamp
	return nil
}

// get is tls.Config.GetCertificate.
func (r *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A file missing for a moment (replaced by rename) is no change.
	stamp, err := r.fileStamp()
	if err != nil || stamp == r.stamp || stamp == r.failed {
		return r.cert, nil
	}
	if err := r.load(stamp); err != nil {
		r.failed = stamp
		r.log.Warn("tls certificate files changed but do not load; serving the previous certificate", "cert_file", r.certFile, "err", err)
	} else {
		r.log.Info("tls certificate reloaded", "cert_file", r.certFile)
	}
	return r.cert, nil
}
