package ops

import (
	"embed"
	"errors"
	"fmt"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/jobschema"
)

//go:embed schemas/*.json
var schemaFS embed.FS

// Schemas returns the JSON Schema of each job type's payload, by job type.
func Schemas() map[string][]byte { return jobschema.Files(schemaFS, "schemas") }

// Host is what Register wires the job types into: *service.Service is one.
type Host interface {
	Register(name string, p worker.Processor) error
	Schemas() *jobschema.Registry
}

// Processors are the job types to register; nil ones are left out.
type Processors struct {
	Sync    *Sync
	Cleanup *Cleanup
	Backup  *Backup
}

// Register adds the schemas of the job types in p to h's registry and
// registers their processors on h. Call it before h starts.
func Register(h Host, p Processors) error {
	if h == nil {
		return errors.New("ops: register: the host is required")
	}
	schemas := Schemas()
	for t, proc := range map[string]worker.Processor{TypeSync: nilOr(p.Sync), TypeCleanup: nilOr(p.Cleanup), TypeBackup: nilOr(p.Backup)} {
		if proc == nil {
			continue
		}
		if err := h.Schemas().Add(t, schemas[t]); err != nil {
			return fmt.Errorf("ops: register %s: %w", t, err)
		}
		if err := h.Register(t, proc); err != nil {
			return fmt.Errorf("ops: register %s: %w", t, err)
		}
	}
	return nil
}

// nilOr turns a nil pointer into a nil Processor (not a non-nil interface
// holding nil).
func nilOr[P interface {
	*Sync | *Cleanup | *Backup
	worker.Processor
}](p P) worker.Processor {
	if p == nil {
		return nil
	}
	return p
}
