package schedule

import (
	"fmt"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/internal/schedstore"
)

// Sealer seals the job data of the queues and types it applies to:
// worker.Encryption. A cron schedule keeps its job template sealed at rest
// (bound to the schedule's name) and each tick's job sealed under the
// job's own id; a one-time job is sealed as Client.Add seals one.
type Sealer interface {
	// SealInsert seals p.Data under p's tenant, queue, type and id when
	// p's queue or type is encrypted; it leaves p as it is otherwise.
	SealInsert(p *broker.JobInsertParams) error
	// OpenInsert opens p.Data sealed by SealInsert; plain data stays.
	OpenInsert(p *broker.JobInsertParams) error
}

// templateID is the id a schedule's job template is sealed under.
var templateID = schedstore.TemplateID

// sealTemplate returns p (a schedule's job template) with its data sealed
// for schedule name; data already sealed is opened first, so that a
// template read back and written again is sealed once.
func sealTemplate(s Sealer, name string, p broker.JobInsertParams) (broker.JobInsertParams, error) {
	if s == nil {
		return p, nil
	}
	p.ID = templateID(name)
	if err := s.OpenInsert(&p); err != nil {
		return p, err
	}
	err := s.SealInsert(&p)
	p.ID = ""
	return p, err
}

// openTemplate returns p (a stored job template) with its data opened.
func openTemplate(s Sealer, name string, p broker.JobInsertParams) (broker.JobInsertParams, error) {
	if s == nil {
		return p, nil
	}
	p.ID = templateID(name)
	err := s.OpenInsert(&p)
	p.ID = ""
	return p, err
}

// jobOf returns the job params of one of schedule s's jobs, with id: its
// template opened, then sealed under the job's own id.
func (c *Cron) jobOf(s *broker.Schedule, id string) (broker.JobInsertParams, error) {
	p, err := openTemplate(c.cfg.Encryption, s.Name, s.Job)
	if err != nil {
		return p, fmt.Errorf("schedule %q: job template: %w", s.Name, err)
	}
	p.ID = id
	if c.cfg.Encryption != nil {
		if err := c.cfg.Encryption.SealInsert(&p); err != nil {
			return p, fmt.Errorf("schedule %q: %w", s.Name, err)
		}
	}
	return p, nil
}
