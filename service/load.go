package service

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"
)

// ConfigError is a configuration value the service cannot run with. Its
// message is one line naming the setting, the value and what is allowed.
type ConfigError struct {
	// Where locates the value: the config file and line, or "" for an
	// environment variable or flag (whose name says which).
	Where string
	// Name is the variable, flag or key at fault.
	Name string
	// Value is the value given, secrets redacted; Quote says whether it is
	// shown (a structural problem such as an unknown key has none).
	Value string
	Quote bool
	// Want says what is allowed, or what is wrong.
	Want string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.Where != "" {
		b.WriteString(e.Where + ": ")
	}
	b.WriteString(e.Name)
	if e.Quote {
		fmt.Fprintf(&b, "=%q", e.Value)
	}
	b.WriteString(": " + e.Want)
	return b.String()
}

// IsConfigError reports whether err is, or wraps, a ConfigError: the
// service exits 2 for these.
func IsConfigError(err error) bool {
	var ce *ConfigError
	return errors.As(err, &ce)
}

// LoadInput is what Load reads.
type LoadInput struct {
	// File is the config file; "" reads none.
	File string
	// LookupEnv reads the environment. Defaults to os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Flags holds the flags given on the command line, by flag name
	// (without dashes), as text.
	Flags map[string]string
}

// Load returns the configuration from defaults, then the file, then the
// environment, then flags, each overriding the one before. Every value is
// checked; the first bad one is returned as a *ConfigError and nothing
// else is returned with it.
func Load(in LoadInput) (*Config, error) {
	if in.LookupEnv == nil {
		in.LookupEnv = os.LookupEnv
	}
	c := Default()
	c.File = in.File
	if in.File != "" {
		if err := c.loadFile(in.File, in.LookupEnv); err != nil {
			return nil, err
		}
	}
	for _, s := range settings {
		v, ok := in.LookupEnv(s.env)
		if !ok || v == "" {
			continue
		}
		if err := c.apply(s, v, "", s.env, FromEnv); err != nil {
			return nil, err
		}
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.flag] = true
		v, ok := in.Flags[s.flag]
		if !ok {
			continue
		}
		if err := c.apply(s, v, "", "--"+s.flag, FromFlag); err != nil {
			return nil, err
		}
	}
	for f := range in.Flags {
		if !known[f] {
			return nil, &ConfigError{Name: "--" + f, Want: "unknown flag"}
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// apply parses one setting's value from a source into c.
func (c *Config) apply(s *setting, v, where, name string, src Source) error {
	if err := s.set(c, v); err != nil {
		shown := v
		if s.secret {
			shown = RedactURL(v)
		}
		if s.hidden {
			shown = "(redacted)"
		}
		want := "want " + s.allowed
		if r := reason(err); r != "" && (s.secret || s.hidden) {
			// The URL parsers say what exactly is wrong; their message
			// would quote a password, reason strips it.
			want += " (" + r + ")"
		}
		return &ConfigError{Where: where, Name: name, Value: shown, Quote: true, Want: want}
	}
	c.sources[s.env] = src
	return nil
}

// reason returns err's message without any URL it quotes.
func reason(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// settingByKey finds a setting by its file key.
func settingByKey(key string) *setting {
	for _, s := range settings {
		if s.key() == key {
			return s
		}
	}
	return nil
}

// settingKeys lists the file keys of the settings, sorted.
func settingKeys() []string {
	out := make([]string, 0, len(settings))
	for _, s := range settings {
		out = append(out, s.key())
	}
	sort.Strings(out)
	return out
}
