package audit

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Outcome is how an audited attempt ended.
type Outcome string

// The outcomes.
const (
	// OK: the action was done (a 2xx or 3xx answer).
	OK Outcome = "ok"
	// Denied: the caller was not authenticated or not allowed (401, 403).
	Denied Outcome = "denied"
	// Failed: the action was attempted and failed (any other 4xx or 5xx);
	// Entry.Status says how.
	Failed Outcome = "error"
)

func (o Outcome) valid() bool { return o == OK || o == Denied || o == Failed }

// Entry is one audited action. Record fills Seq, Time and Chain; the
// caller fills the rest.
type Entry struct {
	// Seq numbers the entries from 1, without gaps.
	Seq int64 `json:"seq"`
	// Time is the store's clock when the entry was appended; it never goes
	// back from one entry to the next.
	Time time.Time `json:"time"`
	// TokenID and TokenName identify the caller's API token; both are
	// empty for a request that presented no token the store knows.
	TokenID   string `json:"tokenId,omitempty"`
	TokenName string `json:"tokenName,omitempty"`
	// Role is the token's role.
	Role string `json:"role,omitempty"`
	// Scope is the token's tenant scope; empty for a cross-tenant token.
	Scope string `json:"scope,omitempty"`
	// Tenant is the tenant of the target (a job's, a schedule's), when
	// known. A tenant-scoped listing shows the entries whose Scope or
	// Tenant is its tenant.
	Tenant string `json:"tenant,omitempty"`
	// Action names what was attempted, e.g. "job.retry".
	Action string `json:"action"`
	// Target names what it was attempted on, e.g. "jobs/01J...".
	Target string `json:"target,omitempty"`
	// Outcome and Status (the HTTP status, when there was one) say how it
	// ended.
	Outcome Outcome `json:"outcome"`
	Status  int     `json:"status,omitempty"`
	// Changes describes what changed, as JSON: before and after for a
	// setting, the ids of the jobs an enqueue or bulk action touched. It
	// never holds a payload or a secret.
	Changes json.RawMessage `json:"changes,omitempty"`
	// RequestID ties the entry to the request's logs (X-Request-ID).
	RequestID string `json:"requestId,omitempty"`
	// Remote is the client's address.
	Remote string `json:"remote,omitempty"`
	// Chain is HMAC-SHA256(key, chain of the entry before || the entry's
	// canonical bytes), hex-encoded.
	Chain string `json:"chain,omitempty"`
}

// Bounds of an entry's text fields and changes.
const (
	maxText    = 1024
	maxChanges = 16 << 10
)

// validate checks what the caller fills in.
func (e *Entry) validate() error {
	if e == nil {
		return fmt.Errorf("entry is nil")
	}
	if e.Action == "" {
		return fmt.Errorf("entry has no action")
	}
	if !e.Outcome.valid() {
		return fmt.Errorf("entry %s: outcome %q must be ok, denied or error", e.Action, e.Outcome)
	}
	for name, v := range map[string]string{"token id": e.TokenID, "token name": e.TokenName, "role": e.Role, "scope": e.Scope,
		"tenant": e.Tenant, "action": e.Action, "target": e.Target, "request id": e.RequestID, "remote": e.Remote} {
		if len(v) > maxText || !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return fmt.Errorf("entry %s: %s must be at most %d printable characters", e.Action, name, maxText)
		}
	}
	if len(e.Changes) > maxChanges {
		return fmt.Errorf("entry %s: changes are %d bytes, more than %d", e.Action, len(e.Changes), maxChanges)
	}
	if len(e.Changes) > 0 && !json.Valid(e.Changes) {
		return fmt.Errorf("entry %s: changes are not valid JSON", e.Action)
	}
	return nil
}

// canonicalPrefix separates the entries' MAC input from any other use of
// the key (checkpoints, the head file).
const canonicalPrefix = "aibos-worker audit entry v1\n"

// canonical returns the bytes the chain covers: the entry without its
// chain, as JSON with the changes re-encoded from their value (object keys
// sorted, numbers as written), so that a store that re-encodes JSON does
// not break the chain while any change of meaning does.
func (e *Entry) canonical() ([]byte, error) {
	c := *e
	c.Chain = ""
	c.Time = c.Time.UTC()
	if len(c.Changes) > 0 {
		n, err := normalJSON(c.Changes)
		if err != nil {
			return nil, fmt.Errorf("entry %d: changes: %w", e.Seq, err)
		}
		c.Changes = n
	}
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("encode entry %d: %w", e.Seq, err)
	}
	return append([]byte(canonicalPrefix), b...), nil
}

// normalJSON re-encodes a JSON value: object keys sorted, no spaces,
// numbers kept as written.
func normalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// chainSize is the length of a chain value: one SHA-256.
const chainSize = sha256.Size

// link returns the chain value of e after prev.
func link(key, prev []byte, e *Entry) ([]byte, error) {
	c, err := e.canonical()
	if err != nil {
		return nil, err
	}
	m := hmac.New(sha256.New, key)
	m.Write(prev)
	m.Write(c)
	return m.Sum(nil), nil
}

// decodeChain reads a hex chain value.
func decodeChain(s string) ([]byte, error) {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != chainSize {
		return nil, fmt.Errorf("chain value %.80q is not %d hex-encoded bytes", s, chainSize)
	}
	return b, nil
}

// mac signs the parts of a record kept beside the entries (checkpoint,
// head file) under a label that keeps it apart from the entries' chain.
func mac(key []byte, label string, parts ...any) []byte {
	m := hmac.New(sha256.New, key)
	fmt.Fprintf(m, "aibos-worker audit %s v1", label)
	for _, p := range parts {
		fmt.Fprintf(m, "\x00%v", p)
	}
	return m.Sum(nil)
}
