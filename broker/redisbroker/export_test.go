package redisbroker

// QueueKeys exposes every key name of a queue to the external tests.
func QueueKeys(prefix, queue string) []string { return newQueueKeys(prefix, queue).all() }

// InsertCalls counts the insert script calls b made.
func InsertCalls(b *Broker) int64 { return b.insertCalls.Load() }

// BodyKey names a queue's body hash, as keys.go does.
func BodyKey(prefix, queue string) string { return newQueueKeys(prefix, queue).body }
