package workflow_test

import "github.com/aibos/worker/workflow"

const crashChildEnv = "WORKFLOW_CRASH_CHILD"

var _ = workflow.DefaultQueue

func crashChild() {}
