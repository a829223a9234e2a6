package redisbroker

import (
	"github.com/redis/go-redis/v9"
)

// The workflow scripts share lua/workflow_lib.lua, prepended after
// lua/lib.lua; their KEYS are listed there and built by workflowKeys.
var (
	scriptWorkflowCreate   = loadWorkflowScript("workflow_create.lua")
	scriptWorkflowComplete = loadWorkflowScript("workflow_complete.lua")
	scriptWorkflowFail     = loadWorkflowScript("workflow_fail.lua")
	scriptWorkflowCancel   = loadWorkflowScript("workflow_cancel.lua")
	scriptWorkflowGet      = loadWorkflowScript("workflow_get.lua")
	// workflow_maintain.lua takes its own KEYS (listed in the file) and
	// needs only lib.lua.
	scriptWorkflowMaintain = loadScript("workflow_maintain.lua")
)

func loadWorkflowScript(name string) *redis.Script {
	rest := readLua("workflow_lib.lua") + "\n" + readLua(name)
	return redis.NewScript(trimLib(readLua("lib.lua"), rest) + "\n" + rest)
}

// workflowKeys returns the KEYS of every workflow script for run id of
// queue; idem is the idempotency key (create only).
func (b *Broker) workflowKeys(queue, id, idem string) []string {
	k := b.keys(queue)
	base := b.prefix + ":{" + queue + "}:"
	run := base + "wf:" + id
	last := run
	if idem != "" {
		last = base + "wfk:" + idem
	}
	return []string{k.scheduled, k.pending, k.active, k.completed, k.dead, k.cancelled, k.seq,
		k.job, k.unique, run, base + "wfx:", last}
}

// workflowIndexKey names the zset of a workflow's runs in one state, scored
// by creation time (the scripts build the same name from KEYS[11]).
func (b *Broker) workflowIndexKey(queue, state, workflow string) string {
	return b.prefix + ":{" + queue + "}:wfx:" + state + ":" + workflow
}

// workflowFinishedKey names the zset of a queue's finished runs, scored by
// finish time (the scripts build the same name from KEYS[11]).
func (b *Broker) workflowFinishedKey(queue string) string {
	return b.prefix + ":{" + queue + "}:wfx:finished"
}
