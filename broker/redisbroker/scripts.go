package redisbroker

import (
	"embed"
	"fmt"
	"regexp"
	"strings"

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
	scriptRecent   = loadScript("recent.lua")
	scriptGet      = loadScript("get.lua")
	scriptReindex  = loadScript("tenant_reindex.lua")
	scriptRescore  = loadScript("rescore.lua")
	scriptSlot     = loadScript("unique_slot.lua")
	scriptMark     = loadScript("mark.lua")
	scriptFairSet  = loadScript("fair_set.lua")
	scriptRewrite  = loadScript("rewrite.lua")
)

func loadScript(name string) *redis.Script {
	body := readLua(name)
	return redis.NewScript(trimLib(readLua("lib.lua"), body) + "\n" + body)
}

func readLua(name string) string {
	b, err := luaFS.ReadFile("lua/" + name)
	if err != nil {
		panic(fmt.Sprintf("redisbroker: embedded lua/%s missing: %v", name, err))
	}
	return string(b)
}

// libFunc matches the first line of a lib.lua function; its body ends at
// the next line that is exactly "end".
var libFunc = regexp.MustCompile(`^local function (\w+)\(`)

// trimLib returns lib without the functions body does not call, directly
// or through the functions it keeps. Every script call runs the whole
// prepended text, and creating some twenty closures it never calls cost
// about a microsecond per call (commandstats); the rest of lib (comments,
// constants) is kept as it is.
func trimLib(lib, body string) string {
	type fn struct {
		name string
		text string
	}
	var fns []fn
	var rest []string
	lines := strings.Split(lib, "\n")
	for i := 0; i < len(lines); i++ {
		m := libFunc.FindStringSubmatch(lines[i])
		if m == nil {
			rest = append(rest, lines[i])
			continue
		}
		// The comment lines just above belong to the function.
		start := len(rest)
		for start > 0 && strings.HasPrefix(rest[start-1], "--") {
			start--
		}
		text := append(append([]string(nil), rest[start:]...), lines[i])
		rest = rest[:start]
		for i++; i < len(lines); i++ {
			text = append(text, lines[i])
			if lines[i] == "end" {
				break
			}
		}
		fns = append(fns, fn{name: m[1], text: strings.Join(text, "\n")})
		rest = append(rest, "\x00"+m[1]) // a placeholder keeps the order
	}
	keep := map[string]bool{}
	for changed := true; changed; {
		changed = false
		for _, f := range fns {
			if keep[f.name] {
				continue
			}
			if calls(body, f.name) {
				keep[f.name], changed = true, true
				continue
			}
			for _, g := range fns {
				if keep[g.name] && calls(g.text, f.name) {
					keep[f.name], changed = true, true
					break
				}
			}
		}
	}
	texts := map[string]string{}
	for _, f := range fns {
		texts[f.name] = f.text
	}
	out := make([]string, 0, len(rest))
	for _, l := range rest {
		if name, ok := strings.CutPrefix(l, "\x00"); ok {
			if keep[name] {
				out = append(out, texts[name])
			}
			continue
		}
		out = append(out, l)
	}
	return strings.Join(out, "\n")
}

// calls reports whether text calls the function name: "name(" not preceded
// by a letter, digit or underscore.
func calls(text, name string) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], name+"(")
		if j < 0 {
			return false
		}
		j += i
		if j == 0 || !isIdentByte(text[j-1]) {
			return true
		}
		i = j + 1
	}
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
