package service

import "fmt"

// Sync configures the data.sync job type (the config file's sync
// section): where each tenant's posted journal entries are pushed.
type Sync struct {
	// URL and Secret (or SecretEnv, an environment variable holding it)
	// are the webhook of every tenant that has none of its own.
	URL       string `yaml:"url"`
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secret_env"`
	// PageSize is how many entries one push carries. Defaults to 100.
	PageSize int `yaml:"page_size"`
	// Tenants are webhooks of their own, by tenant id.
	Tenants map[string]SyncTarget `yaml:"tenants"`
}

// SyncTarget is one tenant's webhook.
type SyncTarget struct {
	URL       string `yaml:"url"`
	Secret    string `yaml:"secret"`
	SecretEnv string `yaml:"secret_env"`
}

// Backup configures the backup job type (the config file's backup
// section). The job runs when a schedule or an operator enqueues it: no
// schedule is configured by default.
type Backup struct {
	// Dir receives the backups. Defaults to "backups" beside the data
	// directory.
	Dir string `yaml:"dir"`
	// Keep is how many backups are kept. Defaults to 7.
	Keep int `yaml:"keep"`
}

// resolveOpsSecrets reads the sync section's secrets that the file names
// by environment variable, with read (resolveSecrets's).
func (c *Config) resolveOpsSecrets(read func(name, env string, dst *string) error) error {
	if c.Sync == nil {
		return nil
	}
	s := *c.Sync
	if err := read("sync", s.SecretEnv, &s.Secret); err != nil {
		return err
	}
	tenants := make(map[string]SyncTarget, len(s.Tenants))
	for id, t := range s.Tenants {
		if err := read("sync.tenants."+id, t.SecretEnv, &t.Secret); err != nil {
			return err
		}
		tenants[id] = t
	}
	s.Tenants = tenants
	c.Sync = &s
	return nil
}

// validateOps checks the sync and backup sections; bad is Validate's.
func (c *Config) validateOps(bad func(name, want string) error) error {
	if s := c.Sync; s != nil {
		if s.URL == "" && len(s.Tenants) == 0 {
			return bad("sync", "set url (every tenant's webhook) or tenants")
		}
		if s.URL != "" {
			if err := checkTarget(bad, "sync", s.URL, s.Secret); err != nil {
				return err
			}
		}
		if s.PageSize < 0 || s.PageSize > 1000 {
			return bad("sync.page_size", fmt.Sprintf("%d is outside 0 (100) to 1000", s.PageSize))
		}
		for id, t := range s.Tenants {
			if err := checkTarget(bad, "sync.tenants."+id, t.URL, t.Secret); err != nil {
				return err
			}
		}
	}
	if b := c.Backup; b != nil && b.Keep < 0 {
		return bad("backup.keep", fmt.Sprintf("%d is negative; want 0 (7) or more", b.Keep))
	}
	return nil
}

func checkTarget(bad func(name, want string) error, name, url, secret string) error {
	if err := checkHTTPURL(url); err != nil {
		return bad(name+".url", err.Error())
	}
	if err := checkSecret(secret); err != nil {
		return bad(name+".secret", err.Error())
	}
	return nil
}
