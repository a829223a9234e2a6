package admin

// Exported for package admin_test only.
var (
	IdempotencyDocKey = idempotencyDocKey
	IdempotencyKind   = idempotencyKind
)

// RouteActions is the table of the mutating routes' audit actions.
var RouteActions = routeActions
