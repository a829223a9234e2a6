package redisbroker

import "github.com/aibos/worker/broker"

// QueueKeys exposes every key name of a queue to the external tests.
func QueueKeys(prefix, queue string) []string { return newQueueKeys(prefix, queue).all() }

// InsertCalls counts the insert script calls b made.
func InsertCalls(b *Broker) int64 { return b.insertCalls.Load() }

// BodyKey names a queue's body hash, as keys.go does.
func BodyKey(prefix, queue string) string { return newQueueKeys(prefix, queue).body }

// LeaseKey and DoneKey name a queue's hashes of lease and done entries, as
// keys.go does.
func LeaseKey(prefix, queue string) string { return newQueueKeys(prefix, queue).lease }

func DoneKey(prefix, queue string) string { return newQueueKeys(prefix, queue).done }

// CompletedKeys names a queue's zset of completed jobs and its tenant's.
func CompletedKeys(prefix, queue, tenant string) (queueZset, tenantZset string) {
	k := newQueueKeys(prefix, queue)
	return k.stateZset(broker.StateCompleted), k.tenantIndex(broker.StateCompleted, tenant)
}

// KeysOf returns every key name of queue as b's cache gives them, and how
// many queues b caches the names of.
func KeysOf(b *Broker, queue string) (keys []string, cached int64) {
	return b.keys(queue).all(), b.keyCached.Load()
}

// MaxCachedKeys bounds the queues whose key names a Broker keeps.
const MaxCachedKeys = maxCachedKeys

// UsesFunctions reports whether b calls its scripts as Redis Functions
// (functions.go), not with EVALSHA.
func UsesFunctions(b *Broker) bool { return !b.evalOnly.Load() }

// Library returns the name of the broker's Functions library and how many
// functions it registers.
func Library() (name string, functions int) { return library.name, len(luaScripts) }

// LibraryWith returns the name and code of the library built from lib
// instead of lua/lib.lua, and with the flags of the file named by flag (if
// any) replaced by flag's value: another release's.
func LibraryWith(lib string, flag map[string]string) (name, code string) {
	flags := map[string]string{}
	for f, v := range functionFlags {
		flags[f] = v
	}
	for f, v := range flag {
		flags[f] = v
	}
	scripts := make([]*luaScript, len(luaScripts))
	for i, s := range luaScripts {
		c := *s
		scripts[i] = &c
	}
	return libraryCode(lib, scripts, flags)
}

// ReadLua returns an embedded lua/ file.
func ReadLua(name string) string { return readLua(name) }
