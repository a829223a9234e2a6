package service

import (
	"strings"
	"testing"
)

// TestOpsSections reads the sync and backup sections, secrets from the
// environment, and refuses bad ones naming the key.
func TestOpsSections(t *testing.T) {
	file := writeFile(t, `sync:
  url: https://app.internal/ledger
  secret_env: SYNC_SECRET
  page_size: 50
  tenants:
    tenant-b: {url: "https://b.example/ledger", secret: whsec_YmJiYg==}
backup: {dir: /var/backups/aibos, keep: 3}
`)
	c, err := Load(LoadInput{File: file, LookupEnv: env("SYNC_SECRET=whsec_c2VjcmV0")})
	if err != nil {
		t.Fatal(err)
	}
	if s := c.Sync; s == nil || s.URL != "https://app.internal/ledger" || s.Secret != "whsec_c2VjcmV0" || s.PageSize != 50 ||
		s.Tenants["tenant-b"].URL != "https://b.example/ledger" || s.Tenants["tenant-b"].Secret != "whsec_YmJiYg==" {
		t.Errorf("sync = %+v", c.Sync)
	}
	if b := c.Backup; b == nil || b.Dir != "/var/backups/aibos" || b.Keep != 3 {
		t.Errorf("backup = %+v", c.Backup)
	}

	for _, tc := range []struct{ name, text, want string }{
		{"sync without a webhook", "sync: {page_size: 10}\n", "sync: set url"},
		{"sync bad url", "sync: {url: 'app/ledger', secret: whsec_c2VjcmV0}\n", `sync.url: "app/ledger" is not an absolute http or https URL`},
		{"sync without secret", "sync: {url: 'http://h/x'}\n", "sync.secret: want secret"},
		{"sync secret env unset", "sync: {url: 'http://h/x', secret_env: NOPE}\n", "sync.secret_env"},
		{"sync tenant without secret", "sync: {tenants: {t1: {url: 'http://h/x'}}}\n", "sync.tenants.t1.secret"},
		{"sync page too big", "sync: {url: 'http://h/x', secret: whsec_c2VjcmV0, page_size: 5000}\n", "sync.page_size: 5000 is outside"},
		{"backup keep negative", "backup: {keep: -1}\n", "backup.keep: -1 is negative"},
		{"unknown backup key", "backup: {keep: 1, retain: 2}\n", "line 1: retain: unknown key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(LoadInput{File: writeFile(t, tc.text), LookupEnv: env()})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !IsConfigError(err) {
				t.Fatalf("got %v, want a config error containing %q", err, tc.want)
			}
		})
	}
}
