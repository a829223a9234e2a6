package envelope

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func ring(t *testing.T, ids ...string) *Ring {
	t.Helper()
	var keys []Key
	for _, id := range ids {
		k, err := NewKey(id)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	r, err := NewRing(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var bind = Binding{Tenant: "t1", Queue: "invoices", Type: "invoice.processing", JobID: "j1", Field: "data"}

func TestSealOpen(t *testing.T) {
	r := ring(t, "k1", "k2")
	tok, err := r.Seal([]byte(`{"iban":"SECRET-MARKER"}`), bind)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tok, "SECRET") {
		t.Fatalf("token %q shows the plaintext", tok)
	}
	if id, ok := KeyID(tok); !ok || id != "k2" {
		t.Fatalf("KeyID = %q, %v; want the newest key k2", id, ok)
	}
	got, err := r.Open(tok, bind)
	if err != nil || string(got) != `{"iban":"SECRET-MARKER"}` {
		t.Fatalf("Open = %q, %v", got, err)
	}
}

func TestOpenRefuses(t *testing.T) {
	r := ring(t, "k1")
	tok, err := r.Seal([]byte("payload"), bind)
	if err != nil {
		t.Fatal(err)
	}
	flipped := []byte(tok)
	flipped[len(flipped)-5] ^= 1
	if flipped[len(flipped)-5] == tok[len(tok)-5] || !strings.ContainsRune("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", rune(flipped[len(flipped)-5])) {
		flipped[len(flipped)-5] = 'A' + (tok[len(tok)-5]-'A'+1)%26
	}
	other := func(f func(*Binding)) Binding { b := bind; f(&b); return b }
	cases := []struct {
		name  string
		token string
		b     Binding
		want  error
	}{
		{"flipped byte", string(flipped), bind, ErrTampered},
		{"other tenant", tok, other(func(b *Binding) { b.Tenant = "t2" }), ErrTampered},
		{"other job", tok, other(func(b *Binding) { b.JobID = "j2" }), ErrTampered},
		{"other queue", tok, other(func(b *Binding) { b.Queue = "bills" }), ErrTampered},
		{"other type", tok, other(func(b *Binding) { b.Type = "x" }), ErrTampered},
		{"other field", tok, other(func(b *Binding) { b.Field = "result" }), ErrTampered},
		{"unknown key", strings.Replace(tok, ":k1:", ":k9:", 1), bind, ErrUnknownKey},
		{"plain text", `{"a":1}`, bind, ErrNotSealed},
		{"truncated", Prefix + "k1:AAAA", bind, ErrTampered},
		{"not base64", Prefix + "k1:***", bind, ErrTampered},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := r.Open(c.token, c.b)
			if !errors.Is(err, c.want) {
				t.Fatalf("Open = %q, %v; want %v", got, err, c.want)
			}
		})
	}
}

func TestRotationKeepsOldKeys(t *testing.T) {
	k1, _ := NewKey("k1")
	k2, _ := NewKey("k2")
	old, _ := NewRing(k1)
	tok, err := old.Seal([]byte("x"), bind)
	if err != nil {
		t.Fatal(err)
	}
	both, _ := NewRing(k1, k2)
	if got, err := both.Open(tok, bind); err != nil || string(got) != "x" {
		t.Fatalf("a ring with the old key still in it: Open = %q, %v", got, err)
	}
	tok2, _ := both.Seal([]byte("y"), bind)
	if id, _ := KeyID(tok2); id != "k2" {
		t.Fatalf("new values sealed with %q, want k2", id)
	}
	onlyNew, _ := NewRing(k2)
	if _, err := onlyNew.Open(tok, bind); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old token without its key: %v, want ErrUnknownKey", err)
	}
}

func TestParseKeys(t *testing.T) {
	s32 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	keys, err := ParseKeys(" k1:" + s32 + " , k2:" + s32)
	if err != nil || len(keys) != 2 || keys[1].ID != "k2" {
		t.Fatalf("ParseKeys = %v, %v", keys, err)
	}
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ=" // 21 bytes
	for _, in := range []string{"", "k1", "k1:" + secret, "bad id:" + s32, "k1:%%%"} {
		_, err := ParseKeys(in)
		if err == nil {
			t.Errorf("ParseKeys(%q) accepted", in)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("ParseKeys(%q) error %q shows the secret", in, err)
		}
	}
	if _, err := NewRing(keys[0], keys[0]); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("NewRing with a key id twice: %v, want a refusal", err)
	}
}

func TestKeyNeverPrints(t *testing.T) {
	k, _ := NewKey("k1")
	enc := base64.StdEncoding.EncodeToString(k.Secret)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k)} {
		if strings.Contains(s, enc) || strings.Contains(s, string(k.Secret)) {
			t.Fatalf("printed key %q shows the secret", s)
		}
	}
}

func TestLoadOrCreateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys")
	keys, created, err := LoadOrCreateFile(path, "gen1")
	if err != nil || !created || len(keys) != 1 {
		t.Fatalf("first LoadOrCreateFile = %v, %v, %v", keys, created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v; want 0600", st.Mode().Perm(), err)
	}
	again, created, err := LoadOrCreateFile(path, "gen1")
	if err != nil || created || string(again[0].Secret) != string(keys[0].Secret) {
		t.Fatalf("second LoadOrCreateFile made a new key or failed: %v, %v", created, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(path); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v, want a refusal", err)
	}
}
