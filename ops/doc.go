// Package ops holds the service's operations jobs: data.sync pushes posted
// journal entries to a webhook, data.cleanup removes what is past
// retention (finished jobs, audit entries through the trail's checkpoint,
// old report files), and backup copies the embedded stores consistently
// (and asks Redis for a BGSAVE); Restore brings an embedded backup back.
// cmd/aibos-worker registers them on the service; a team's own binary may
// register them the same way.
package ops
