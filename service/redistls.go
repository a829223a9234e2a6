package service

import (
	"crypto/tls"

	"github.com/aibos/worker/broker/redisbroker"
)

// applyRedisTLS sets the REDIS_TLS_* settings on the TLS configuration of
// a rediss:// URL's options: the authorities trusted instead of the
// system's, the client certificate, the expected server name. Each
// problem is a *ConfigError naming the setting; the settings with a
// redis:// URL are one too, since they would silently go unused.
func (c *Config) applyRedisTLS(opts *redisbroker.ClientOptions) error {
	conf := opts.TLS()
	if conf == nil {
		for _, s := range []struct{ name, v string }{{"REDIS_TLS_CA_FILE", c.RedisTLSCAFile},
			{"REDIS_TLS_CERT_FILE", c.RedisTLSCertFile}, {"REDIS_TLS_KEY_FILE", c.RedisTLSKeyFile},
			{"REDIS_TLS_SERVER_NAME", c.RedisTLSServerName}} {
			if s.v != "" {
				return &ConfigError{Name: s.name, Value: s.v, Quote: true,
					Want: "is for TLS, but REDIS_URL is not a rediss:// URL (redis:// speaks plain TCP)"}
			}
		}
		return nil
	}
	if c.RedisTLSCAFile != "" {
		pool, err := loadCAFile("REDIS_TLS_CA_FILE", c.RedisTLSCAFile)
		if err != nil {
			return err
		}
		conf.RootCAs = pool
	}
	switch {
	case (c.RedisTLSCertFile == "") != (c.RedisTLSKeyFile == ""):
		return &ConfigError{Name: "REDIS_TLS_CERT_FILE", Want: "and REDIS_TLS_KEY_FILE go together: set both or neither"}
	case c.RedisTLSCertFile != "":
		cert, err := tls.LoadX509KeyPair(c.RedisTLSCertFile, c.RedisTLSKeyFile)
		if err != nil {
			return &ConfigError{Name: "REDIS_TLS_CERT_FILE", Value: c.RedisTLSCertFile, Quote: true,
				Want: "with REDIS_TLS_KEY_FILE is no usable PEM certificate and key: " + reason(err)}
		}
		conf.Certificates = []tls.Certificate{cert}
	}
	if c.RedisTLSServerName != "" {
		conf.ServerName = c.RedisTLSServerName
	}
	return nil
}
