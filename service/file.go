package service

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker"
)

// fileDoc is the config file. The scalar settings sit at the top level
// beside the sections, under their file keys (the flag names with '_').
type fileDoc struct {
	Queues    []fileQueue          `yaml:"queues"`
	JobTypes  map[string]JobType   `yaml:"job_types"`
	Schedules []Schedule           `yaml:"schedules"`
	Callbacks *Callbacks           `yaml:"callbacks"`
	Recovery  []RecoveryStrategy   `yaml:"recovery"`
	Scaling   *Scaling             `yaml:"scaling"`
	Sync      *Sync                `yaml:"sync"`
	Backup    *Backup              `yaml:"backup"`
	Settings  map[string]yaml.Node `yaml:",inline"`
}

// fileQueue is a queue as the file describes it: the seed's
// {name, priority, concurrency}. Fair, when absent, is on for the seed's
// accounting queues (SeedQueues) and off for the others.
type fileQueue struct {
	Name             string `yaml:"name"`
	Priority         int    `yaml:"priority"`
	Concurrency      int    `yaml:"concurrency"`
	DeleteOnComplete bool   `yaml:"delete_on_complete"`
	Fair             *bool  `yaml:"fair"`
	// MaxCrashes, when present, replaces WORKER_MAX_CRASHES for the
	// queue; 0 turns the rule off there.
	MaxCrashes *int `yaml:"max_crashes"`
}

// sections are the file's keys other than the settings.
var sections = []string{"queues", "job_types", "schedules", "callbacks", "recovery", "scaling", "sync", "backup"}

// loadFile reads the config file into c. Keys it does not know, at any
// depth, are errors.
func (c *Config) loadFile(path string, lookupEnv func(string) (string, bool)) error {
	where := "config file " + path
	raw, err := os.ReadFile(path)
	if err != nil {
		return &ConfigError{Name: "--config", Value: path, Quote: true, Want: "a readable YAML file (" + reason(err) + ")"}
	}
	var doc fileDoc
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		return yamlError(where, err)
	}
	for key, n := range doc.Settings {
		s := settingByKey(key)
		if s == nil {
			return &ConfigError{Where: fmt.Sprintf("%s line %d", where, n.Line), Name: key,
				Want: fmt.Sprintf("unknown key (known: %s, %s)", strings.Join(sections, ", "), strings.Join(settingKeys(), ", "))}
		}
		if n.Kind != yaml.ScalarNode {
			return &ConfigError{Where: fmt.Sprintf("%s line %d", where, n.Line), Name: key, Want: "want " + s.allowed}
		}
		if err := c.apply(s, n.Value, fmt.Sprintf("%s line %d", where, n.Line), key, FromFile); err != nil {
			return err
		}
	}
	if doc.Queues != nil {
		c.Queues = make([]worker.QueueConfig, len(doc.Queues))
		for i, q := range doc.Queues {
			fair := seedFair(q.Name)
			if q.Fair != nil {
				fair = *q.Fair
			}
			c.Queues[i] = worker.QueueConfig{Name: q.Name, Priority: q.Priority, Concurrency: q.Concurrency,
				DeleteOnComplete: q.DeleteOnComplete, Fair: fair}
			if q.MaxCrashes != nil {
				if *q.MaxCrashes < 0 || *q.MaxCrashes > broker.MaxAttemptHistory {
					return &ConfigError{Where: where, Name: "queues." + q.Name + ".max_crashes", Value: strconv.Itoa(*q.MaxCrashes), Quote: true,
						Want: "want " + fmt.Sprintf("an integer from 0 (off) to %d", broker.MaxAttemptHistory)}
				}
				c.Queues[i].MaxCrashes = cmp.Or(*q.MaxCrashes, -1) // the Manager's -1 is off
			}
		}
	}
	if doc.Recovery != nil {
		c.Recovery = doc.Recovery
	}
	c.JobTypes, c.Schedules, c.Callbacks, c.Scaling = doc.JobTypes, doc.Schedules, doc.Callbacks, doc.Scaling
	c.Sync, c.Backup = doc.Sync, doc.Backup
	return c.resolveSecrets(lookupEnv)
}

// resolveSecrets reads the secrets that the file names by environment
// variable.
func (c *Config) resolveSecrets(lookupEnv func(string) (string, bool)) error {
	read := func(name, env string, dst *string) error {
		if env == "" {
			return nil
		}
		if *dst != "" {
			return &ConfigError{Where: "config file " + c.File, Name: name, Want: "set secret or secret_env, not both"}
		}
		v, ok := lookupEnv(env)
		if !ok || v == "" {
			return &ConfigError{Where: "config file " + c.File, Name: name + ".secret_env", Value: env, Quote: true, Want: "want an environment variable that is set"}
		}
		*dst = v
		return nil
	}
	for _, t := range c.JobTypeNames() {
		jt := c.JobTypes[t]
		if jt.HTTP == nil {
			continue
		}
		e := *jt.HTTP
		if err := read("job_types."+t+".http", e.SecretEnv, &e.Secret); err != nil {
			return err
		}
		jt.HTTP = &e
		c.JobTypes[t] = jt
	}
	if c.Callbacks != nil {
		cb := *c.Callbacks
		if err := read("callbacks", cb.SecretEnv, &cb.Secret); err != nil {
			return err
		}
		c.Callbacks = &cb
	}
	return c.resolveOpsSecrets(read)
}

// fieldNotFound matches yaml.v3's message for a key KnownFields rejects.
var fieldNotFound = regexp.MustCompile(`^line (\d+): field (\S+) not found in type \S+$`)

// yamlError turns a YAML decoding error into one line.
func yamlError(where string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg := te.Errors[0]
		if m := fieldNotFound.FindStringSubmatch(msg); m != nil {
			return &ConfigError{Where: where + " line " + m[1], Name: m[2], Want: "unknown key"}
		}
		return &ConfigError{Where: where, Name: "value", Want: msg}
	}
	return &ConfigError{Where: where, Name: "YAML", Want: strings.TrimPrefix(err.Error(), "yaml: ")}
}
