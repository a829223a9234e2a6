// Package jobschema checks job payloads against a JSON Schema per job type
// at enqueue, so that a malformed job is refused with the JSON pointer of
// its first failing field instead of failing later in a processor.
//
// A Registry maps job types to compiled schemas (any draft the validator
// knows, 2020-12 by default). Add them in code, or load a directory of
// <job type>.json files with LoadDir. A worker.Client given the registry
// (ClientConfig.Schemas) checks every Add and AddMany before anything is
// stored; job types without a schema are not checked.
//
//	reg := jobschema.New()
//	_ = reg.Add("invoice.processing", invoiceSchema)
//	c, _ := worker.NewClient(b, worker.ClientConfig{Schemas: reg})
//	_, err := c.Add(ctx, "invoices", spec) // errors.As(err, new(*jobschema.Error))
//
// The validator is github.com/santhosh-tekuri/jsonschema/v6: maintained,
// complete for every draft, pure Go, and it reports each failure's
// instance location, which is what the pointer is built from.
package jobschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/aibos/worker/broker"
)

// Error says why a payload fails its job type's schema: the JSON pointer
// (RFC 6901) of the first failing field, "" for the payload as a whole,
// and the reason. It matches broker.ErrInvalidJob (worker.ErrInvalidJob)
// with errors.Is.
type Error struct {
	Type    string // the job type
	Pointer string // e.g. "/invoiceId"
	Reason  string // e.g. "missing property"
}

// Error names the job type, the field and the reason.
func (e *Error) Error() string {
	at := e.Pointer
	if at == "" {
		at = "the payload"
	}
	return fmt.Sprintf("payload of job type %q fails its schema at %s: %s", e.Type, at, e.Reason)
}

// Is makes errors.Is(err, broker.ErrInvalidJob) true.
func (e *Error) Is(target error) bool { return target == broker.ErrInvalidJob }

// Registry holds one compiled schema per job type. It is safe for
// concurrent use; adding while jobs are checked is allowed.
type Registry struct {
	mu      sync.RWMutex
	schemas map[string]*jsonschema.Schema
}

// New returns an empty Registry.
func New() *Registry { return &Registry{schemas: map[string]*jsonschema.Schema{}} }

// Add compiles schema (a JSON Schema document) for jobType, replacing any
// schema the type had. An empty type or a schema that does not compile is
// an error; the registry is then unchanged.
func (r *Registry) Add(jobType string, schema []byte) error {
	if jobType == "" {
		return errors.New("jobschema: add schema: job type is empty")
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		return fmt.Errorf("jobschema: add schema of %q: not JSON: %w", jobType, err)
	}
	c := jsonschema.NewCompiler()
	loc := "mem:///" + jobType + ".json"
	if err := c.AddResource(loc, doc); err != nil {
		return fmt.Errorf("jobschema: add schema of %q: %w", jobType, err)
	}
	sch, err := c.Compile(loc)
	if err != nil {
		return fmt.Errorf("jobschema: compile schema of %q: %w", jobType, err)
	}
	r.mu.Lock()
	r.schemas[jobType] = sch
	r.mu.Unlock()
	return nil
}

// LoadDir adds every <job type>.json file of dir (not its subdirectories):
// the file name without .json is the job type. It stops at the first file
// that cannot be read or compiled, naming it.
func (r *Registry) LoadDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("jobschema: load schemas: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("jobschema: load schemas: %w", err)
		}
		if err := r.Add(strings.TrimSuffix(e.Name(), ".json"), b); err != nil {
			return fmt.Errorf("%w (file %s)", err, path)
		}
	}
	return nil
}

// Types returns the job types that have a schema, sorted.
func (r *Registry) Types() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.schemas))
	for t := range r.schemas {
		out = append(out, t)
	}
	slices.Sort(out)
	return out
}

// ValidatePayload checks data, a job's JSON payload (nil is JSON null),
// against jobType's schema. A type without a schema passes. A failure is
// an *Error naming the first failing field.
func (r *Registry) ValidatePayload(jobType string, data json.RawMessage) error {
	r.mu.RLock()
	sch := r.schemas[jobType]
	r.mu.RUnlock()
	if sch == nil {
		return nil
	}
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return &Error{Type: jobType, Reason: "payload is not valid JSON"}
	}
	err = sch.Validate(v)
	var ve *jsonschema.ValidationError
	if err == nil || !errors.As(err, &ve) {
		return err
	}
	ptr, reason := first(ve)
	return &Error{Type: jobType, Pointer: ptr, Reason: reason}
}

var printer = message.NewPrinter(language.English)

// first returns the pointer and reason of the first leaf failure of ve:
// the validator nests failures by schema keyword, and the leaf is the one
// a user can act on. A missing or an extra property is reported at that
// property, not at the object holding it.
func first(ve *jsonschema.ValidationError) (string, string) {
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	loc := slices.Clone(ve.InstanceLocation)
	reason := ve.ErrorKind.LocalizedString(printer)
	switch k := ve.ErrorKind.(type) {
	case *kind.Required:
		if len(k.Missing) > 0 {
			loc, reason = append(loc, k.Missing[0]), "missing property"
		}
	case *kind.AdditionalProperties:
		if len(k.Properties) > 0 {
			loc, reason = append(loc, k.Properties[0]), "property not allowed"
		}
	}
	return pointer(loc), reason
}

// pointer encodes reference tokens as an RFC 6901 JSON pointer.
func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return sb.String()
}
