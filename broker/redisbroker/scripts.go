package redisbroker

import (
	"embed"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// The Lua sources: one script per file, each headed by its KEYS, ARGV and
// return value. lib.lua holds the helpers every script shares and is
// prepended to each of them.
//
//go:embed lua/*.lua
var luaFS embed.FS

// scripts holds every state change of the broker, one Lua script each.
// Script.Run uses EVALSHA and falls back to EVAL when the server has not
// cached the script yet.
var (
	scriptInsert   = loadScript("insert.lua")
	scriptFetch    = loadScript("fetch.lua")
	scriptComplete = loadScript("complete.lua")
	scriptFail     = loadScript("fail.lua")
	scriptRelease  = loadScript("release.lua")
	scriptExtend   = loadScript("extend.lua")
	scriptProgress = loadScript("progress.lua")
	scriptCancel   = loadScript("cancel.lua")
	scriptRetry    = loadScript("retry.lua")
	scriptDelete   = loadScript("delete.lua")
	scriptList     = loadScript("list.lua")
	scriptMaintain = loadScript("maintain.lua")
	scriptOldest   = loadScript("oldest.lua")
	scriptGet      = loadScript("get.lua")
)

func loadScript(name string) *redis.Script {
	lib, err := luaFS.ReadFile("lua/lib.lua")
	if err != nil {
		panic(fmt.Sprintf("redisbroker: embedded lua/lib.lua missing: %v", err))
	}
	body, err := luaFS.ReadFile("lua/" + name)
	if err != nil {
		panic(fmt.Sprintf("redisbroker: embedded lua/%s missing: %v", name, err))
	}
	return redis.NewScript(string(lib) + "\n" + string(body))
}
