package service

import (
	"crypto/x509"
	"os"
)

// loadCAFile reads the PEM file of authorities that setting name gives.
// A file that cannot be read or holds no certificate is a *ConfigError
// naming the setting.
func loadCAFile(name, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Name: name, Value: path, Quote: true, Want: "cannot be read: " + reason(err)}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, &ConfigError{Name: name, Value: path, Quote: true, Want: "holds no PEM certificate"}
	}
	return pool, nil
}

// SMTPRootCAs returns the authorities of SMTP_CA_FILE, the only ones the
// STARTTLS certificate of SMTP_HOST may be signed by, or nil (the
// system's) when it is unset. A file that cannot be read or holds no
// certificate, or one set where no STARTTLS would use it (no SMTP_HOST,
// SMTP_STARTTLS none), is a *ConfigError naming SMTP_CA_FILE.
func (c *Config) SMTPRootCAs() (*x509.CertPool, error) {
	switch {
	case c.SMTPCAFile == "":
		return nil, nil
	case c.SMTPHost == "":
		return nil, &ConfigError{Name: "SMTP_CA_FILE", Value: c.SMTPCAFile, Quote: true, Want: "is for the STARTTLS of SMTP_HOST, which is unset"}
	case c.SMTPStartTLS == "none":
		return nil, &ConfigError{Name: "SMTP_CA_FILE", Value: c.SMTPCAFile, Quote: true, Want: "is for STARTTLS, but SMTP_STARTTLS is none (the mail goes in the clear)"}
	}
	return loadCAFile("SMTP_CA_FILE", c.SMTPCAFile)
}
