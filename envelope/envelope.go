// Package envelope seals job data, results and error messages with
// AES-256-GCM under a key ring, binding each ciphertext to the job it
// belongs to.
//
// A sealed value is a text token,
//
//	aibosenc1:<key id>:<base64url(nonce || ciphertext || tag)>
//
// carrying the id of the key that sealed it, so that a ring holding old
// and new keys opens both while Seal always uses the newest. The
// associated data (Binding) names the tenant, queue, type, job id and
// field: a token copied to another job, tenant or field fails to open.
//
// The primitive is the standard library's crypto/cipher AES-GCM: it is the
// maintained, constant-time implementation Go's TLS uses, and what a
// wrapper such as Tink would call underneath. Tink's keysets bring a key
// format and key-id scheme of their own, while the service must take keys
// as "keyid:base64" from WORKER_ENCRYPTION_KEYS; the envelope around the
// primitive is a nonce, a key id and a prefix, small enough to read whole.
// Nonces are random (96 bits), so a key should seal well under 2^32
// values: rotate keys long before that.
package envelope

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Prefix starts every sealed token.
const Prefix = "aibosenc1:"

// KeySize is the length of an AES-256 key in bytes.
const KeySize = 32

// Errors of Open. Both mean the value must not be used.
var (
	// ErrUnknownKey means the token names a key the ring does not hold.
	ErrUnknownKey = errors.New("unknown encryption key id")
	// ErrTampered means the token does not open under its key and binding:
	// it was altered, or copied from another job, tenant or field.
	ErrTampered = errors.New("ciphertext does not authenticate (altered, or copied from another job)")
	// ErrNotSealed means the value is not a sealed token at all.
	ErrNotSealed = errors.New("value is not an encrypted envelope")
)

// Key is one key of a ring: an id stored with each ciphertext, and 32
// secret bytes.
type Key struct {
	ID     string
	Secret []byte
}

// String never shows the secret, so a key printed by mistake leaks nothing.
func (k Key) String() string { return "envelope.Key{ID: " + k.ID + ", Secret: [redacted]}" }

// GoString is String, for %#v.
func (k Key) GoString() string { return k.String() }

// Binding is the associated data a value is sealed under: the job it
// belongs to and which of its fields it is.
type Binding struct {
	Tenant string
	Queue  string
	Type   string
	JobID  string
	// Field names the value within the job ("data", "result", "error"),
	// so that a job's result cannot stand in for its data.
	Field string
}

// bytes encodes b unambiguously: each part length-prefixed.
func (b Binding) bytes() []byte {
	var sb strings.Builder
	for _, s := range []string{"aibos-worker/envelope/v1", b.Tenant, b.Queue, b.Type, b.JobID, b.Field} {
		fmt.Fprintf(&sb, "%d:%s;", len(s), s)
	}
	return []byte(sb.String())
}

// Ring is a set of keys, the last added the newest. It is safe for
// concurrent use; it never changes after NewRing.
type Ring struct {
	aeads  map[string]cipher.AEAD
	newest string
	ids    []string
}

// NewRing returns a ring of keys, oldest first: Seal uses the last. Ids
// must be unique, non-empty, and of letters, digits, '-', '_' or '.'; each
// secret must be KeySize bytes.
func NewRing(keys ...Key) (*Ring, error) {
	if len(keys) == 0 {
		return nil, errors.New("new key ring: no keys given")
	}
	r := &Ring{aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, k := range keys {
		if err := validID(k.ID); err != nil {
			return nil, fmt.Errorf("new key ring: key %d: %w", i, err)
		}
		if _, dup := r.aeads[k.ID]; dup {
			return nil, fmt.Errorf("new key ring: key id %q given twice", k.ID)
		}
		if len(k.Secret) != KeySize {
			return nil, fmt.Errorf("new key ring: key %q is %d bytes, want %d", k.ID, len(k.Secret), KeySize)
		}
		block, err := aes.NewCipher(k.Secret)
		if err != nil {
			return nil, fmt.Errorf("new key ring: key %q: %w", k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("new key ring: key %q: %w", k.ID, err)
		}
		r.aeads[k.ID] = aead
		r.ids = append(r.ids, k.ID)
	}
	r.newest = keys[len(keys)-1].ID
	return r, nil
}

func validID(id string) error {
	if id == "" {
		return errors.New("key id is empty")
	}
	if len(id) > 64 {
		return fmt.Errorf("key id %q is longer than 64 characters", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("key id %q has %q: use letters, digits, '-', '_' or '.'", id, c)
		}
	}
	return nil
}

// Newest returns the id of the key Seal uses.
func (r *Ring) Newest() string { return r.newest }

// IDs returns the ring's key ids, oldest first.
func (r *Ring) IDs() []string { return append([]string(nil), r.ids...) }

// Seal encrypts plaintext under the newest key, bound to b, and returns
// the token.
func (r *Ring) Seal(plaintext []byte, b Binding) (string, error) {
	aead := r.aeads[r.newest]
	buf := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("seal %s: generate nonce: %w", b.Field, err)
	}
	buf = aead.Seal(buf, buf, plaintext, b.bytes())
	return Prefix + r.newest + ":" + base64.RawURLEncoding.EncodeToString(buf), nil
}

// Open decrypts a token sealed under b. Errors wrap ErrNotSealed,
// ErrUnknownKey or ErrTampered.
func (r *Ring) Open(token string, b Binding) ([]byte, error) {
	id, body, ok := split(token)
	if !ok {
		return nil, fmt.Errorf("open %s: %w", b.Field, ErrNotSealed)
	}
	aead, ok := r.aeads[id]
	if !ok {
		return nil, fmt.Errorf("open %s: %w %q", b.Field, ErrUnknownKey, id)
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("open %s under key %q: %w", b.Field, id, ErrTampered)
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, raw[:n], raw[n:], b.bytes())
	if err != nil {
		return nil, fmt.Errorf("open %s under key %q: %w", b.Field, id, ErrTampered)
	}
	return plain, nil
}

// KeyID returns the id of the key a token was sealed with, and whether s
// is a token at all.
func KeyID(s string) (string, bool) {
	id, _, ok := split(s)
	return id, ok
}

// IsSealed reports whether s is a sealed token.
func IsSealed(s string) bool { return strings.HasPrefix(s, Prefix) }

func split(s string) (id, body string, ok bool) {
	rest, ok := strings.CutPrefix(s, Prefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ":")
}
