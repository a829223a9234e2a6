package admin

// Exported for package admin_test only.
var (
	IdempotencyDocKey = idempotencyDocKey
	IdempotencyKind   = idempotencyKind
)
