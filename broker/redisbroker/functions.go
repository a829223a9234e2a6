package redisbroker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The scripts run as the functions of one Redis Functions library (Redis
// 7.0 and later): lib.lua's helpers are then created once, when the server
// loads the library, where a script run with EVALSHA creates each helper
// it includes (a closure: an allocation, and garbage for Lua's collector)
// on every call. That was about 17,600 of the 131,000 instructions Redis
// ran per single-job insert (callgrind).
//
// The library's name, and every function's, holds a hash of its code, so
// that two releases of the broker, each with its own library, share a
// server during a rolling upgrade. A broker loads its library the first
// time a call answers that a function is missing (a new server, a restart
// without persistence, FUNCTION FLUSH, a Cluster master that joined
// later), and retries the call. A server without Functions (before 7.0,
// one whose ACL denies FCALL or FUNCTION LOAD to the broker's user, or one
// that refuses the library) runs the same scripts with EVALSHA instead:
// the broker switches the first time a call says so, logs it once, and
// stays switched. A load that fails for a passing reason (the server full
// or read-only, a Cluster master down, the network) switches nothing: the
// calls that find the library missing run their scripts, and one tries
// the load again each second (loadRetry).
//
// Flags (Redis's script flags): a script that adds jobs or documents
// (insert, commit, and those that write policies or reindex) is refused
// whole while the server is above maxmemory, before any write. One that
// only reads is no-writes. Every other script (fetch, complete, fail,
// retry, cancel, delete, maintenance, ...) moves or removes jobs and is
// allow-oom: workers still finish their jobs, and retention still frees
// memory, on a full server. Progress, a job's own JSON of any size, has
// no flag: it waits for room like an insert. (Run with EVAL, Redis refuses
// a script's first write that may grow memory and allows the rest.)

// library is the Functions library: its name and code. init sets each
// luaScript's fn.
var library struct {
	name string
	code string
}

// functionFlags gives each script's flags; a script not listed has none.
var functionFlags = map[string]string{
	"get.lua": "no-writes", "list.lua": "no-writes", "oldest.lua": "no-writes",
	"recent.lua": "no-writes", "doc_list.lua": "no-writes", "nextdue.lua": "no-writes",

	"fetch.lua": "allow-oom", "complete.lua": "allow-oom", "fail.lua": "allow-oom",
	"release.lua": "allow-oom", "extend.lua": "allow-oom",
	"cancel.lua": "allow-oom", "retry.lua": "allow-oom", "delete.lua": "allow-oom",
	"maintain.lua": "allow-oom", "mark.lua": "allow-oom",
	"leader_acquire.lua": "allow-oom", "leader_release.lua": "allow-oom",
}

// replicateCommands is lib.lua's call that makes an EVAL script replicate
// its effects (the default from Redis 5 on). Functions always do, and
// their library's load may call nothing but redis.register_function.
const replicateCommands = "if redis.replicate_commands then\n  redis.replicate_commands()\nend\n"

func init() {
	library.name, library.code = libraryCode(readLua("lib.lua"), luaScripts, functionFlags)
}

// libraryCode returns the library's name and code for lib, scripts and
// their flags, and sets each script's fn.
func libraryCode(lib string, scripts []*luaScript, flags map[string]string) (name, code string) {
	if !strings.Contains(lib, replicateCommands) {
		panic("redisbroker: lib.lua no longer holds " + fmt.Sprintf("%q", replicateCommands))
	}
	for file := range flags {
		if !slices.ContainsFunc(scripts, func(s *luaScript) bool { return s.file == file }) {
			panic("redisbroker: flags for " + file + ", which is not a script")
		}
	}
	var body strings.Builder
	body.WriteString(strings.Replace(lib, replicateCommands, "", 1))
	for i, s := range scripts {
		fmt.Fprintf(&body, "\n-- %s\nlocal function f%d(KEYS, ARGV)\n%s\nend\n", s.file, i, readLua(s.file))
	}
	// The name covers everything the code says: the code, and each
	// function's file and flags (registered below, under names that hold
	// the hash). Another release's library, however small the change,
	// loads beside this one rather than being taken for it.
	h := sha256.New()
	h.Write([]byte(body.String()))
	for _, s := range scripts {
		fmt.Fprintf(h, "\x00%s %s", s.file, flags[s.file])
	}
	sum := h.Sum(nil)
	name = "aibos_worker_" + hex.EncodeToString(sum[:8])
	var reg strings.Builder
	for i, s := range scripts {
		s.fn = name + "_" + strings.TrimSuffix(s.file, ".lua")
		f := ""
		if flags[s.file] != "" {
			f = ", flags = {'" + flags[s.file] + "'}"
		}
		fmt.Fprintf(&reg, "redis.register_function{function_name = '%s', callback = f%d%s}\n", s.fn, i, f)
	}
	return name, "#!lua name=" + name + "\n" + body.String() + "\n" + reg.String()
}

// run runs s with keys and args on via.
func (b *Broker) run(ctx context.Context, via scriptRunner, s *luaScript, keys []string, args ...any) *redis.Cmd {
	if !b.evalOnly.Load() {
		cmd := via.FCall(ctx, s.fn, keys, args...)
		missing, loaded := b.functionsMissing(ctx, via, cmd.Err())
		if !missing {
			return cmd
		}
		if loaded {
			if cmd = via.FCall(ctx, s.fn, keys, args...); !isFunctionNotFound(cmd.Err()) {
				return cmd
			}
			// Loaded elsewhere than where the call goes (a Cluster whose
			// slot map changed meanwhile): the script runs this time.
		}
	}
	return s.eval.Run(ctx, via, keys, args...)
}

// loadRetry is how long after a failed load of the library a call that
// finds it missing runs its script rather than trying the load again.
const loadRetry = time.Second

// functionsMissing reports whether err says that a call did not run
// because the server lacks the library or Functions, and if so whether
// the library is loaded now: the call is then made again, with FCALL if
// it is, else as a script.
//
// A server without Functions, or one that refuses the library itself (a
// Redis-compatible server whose Lua differs), switches the broker to
// scripts for good. A load that fails for a passing reason (the server
// above maxmemory, read-only or loading, a Cluster master unreachable,
// the network) makes this call, and those in the next loadRetry that find
// the library missing, run their scripts; a call after that tries the
// load again.
func (b *Broker) functionsMissing(ctx context.Context, via scriptRunner, err error) (missing, loaded bool) {
	switch {
	case err == nil:
		return false, false
	case noFunctions(err):
		b.useEval(err)
		return true, false
	case !isFunctionNotFound(err):
		return false, false
	}
	if t := b.loadFailedAt.Load(); t != 0 && time.Since(time.Unix(0, t)) < loadRetry {
		return true, false
	}
	lerr := loadLibrary(ctx, via)
	switch {
	case lerr == nil:
		b.loadFailedAt.Store(0)
		return true, true
	case passing(lerr):
		if ctx.Err() == nil { // a caller that gave up says nothing of the server
			b.loadFailedAt.Store(time.Now().UnixNano())
		}
		b.log.Warn("redisbroker: loading the Functions library failed; running scripts until it loads", "reason", lerr)
	default:
		b.useEval(lerr)
	}
	return true, false
}

// passing reports whether err, a failed load of the library, may not
// happen again: not a reply of the server's about the library or the
// command (an unknown command, an ACL refusal, code it will not take), but
// about its state (memory, a read-only replica, a loading or failing
// server or Cluster), or no reply at all (the network, the context).
func passing(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return true
	}
	for _, p := range []string{"OOM", "READONLY", "NOREPLICAS", "BUSY", "MASTERDOWN", "LOADING", "TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK"} {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// useEval switches the broker to scripts, once.
func (b *Broker) useEval(why error) {
	if b.evalOnly.CompareAndSwap(false, true) {
		b.log.Warn("redisbroker: Redis Functions unavailable; running scripts with EVALSHA", "reason", why)
	}
}

// loadLibrary loads the library on via's server, or on every master of a
// Cluster. One that has it already is fine.
func loadLibrary(ctx context.Context, via scriptRunner) error {
	load := func(ctx context.Context, c interface {
		FunctionLoad(context.Context, string) *redis.StringCmd
	}) error {
		err := c.FunctionLoad(ctx, library.code).Err()
		if err != nil && strings.Contains(err.Error(), "'"+library.name+"' already exists") {
			return nil
		}
		return err
	}
	if cc, ok := via.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return load(ctx, c) })
	}
	return load(ctx, via)
}

// isFunctionNotFound reports whether err is FCALL's reply for a function
// the server does not have.
func isFunctionNotFound(err error) bool {
	return redis.HasErrorPrefix(err, "Function not found") // HasErrorPrefix drops "ERR "
}

// noFunctions reports whether err says that the server has no Functions,
// or that the broker's user may not call or load them: an unknown command
// (Redis before 7.0), or an ACL refusal of the command itself (not of a
// key, which a script would meet as well).
func noFunctions(err error) bool {
	var rerr redis.Error
	if !errors.As(err, &rerr) {
		return false
	}
	msg := strings.ToLower(rerr.Error())
	switch {
	case strings.HasPrefix(msg, "err unknown command"):
		return strings.Contains(msg, "fcall") || strings.Contains(msg, "function")
	case strings.HasPrefix(msg, "noperm"):
		return strings.Contains(msg, "'fcall'") || strings.Contains(msg, "'function|load'")
	}
	return false
}
