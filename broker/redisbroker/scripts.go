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

// The broker's state changes, one Lua script each: run as functions of one
// Redis Functions library where the server has them (functions.go), else
// as scripts (EVALSHA, falling back to EVAL).
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

// A luaScript is one of lua/*.lua.
type luaScript struct {
	file string // its file name, "insert.lua"
	// fn names its function in the library (functions.go); set at init.
	fn string
	// eval is the script, with the lib functions it calls, for a server
	// without Functions.
	eval *redis.Script
}

// luaScripts lists every luaScript, in the order loadScript made them.
var luaScripts []*luaScript

func loadScript(name string) *luaScript {
	s := &luaScript{file: name, eval: redis.NewScript(scriptText(readLua("lib.lua"), readLua(name)))}
	luaScripts = append(luaScripts, s)
	return s
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

// libConst matches a lib.lua constant, one line: an upper-case name. It is
// kept where a kept text names it (where one costs a call).
var libConst = regexp.MustCompile(`^local ([A-Z][A-Z0-9_]*) = `)

// trimLib returns lib without the functions body does not call and the
// constants it does not name, directly or through the functions it keeps.
// Every script call runs the whole prepended text, and creating some
// twenty closures it never calls cost about a microsecond per call
// (commandstats); the rest of lib (comments, setup) is kept as it is.
func trimLib(lib, body string) string {
	l := parseLib(lib)
	return l.text(l.keep(l.setup+"\n"+body, nil), true)
}

// libSplit is the line at which a script's body asks for the lib
// functions that only the code below it calls: the code above (a fast path
// that returns) then creates only the closures it needs. Each closure is
// an allocation and later garbage on every call: the single-job insert's
// fast path ran 8,400 instructions less of Redis's (callgrind), of 140,000.
const libSplit = "-- lib: the rest"

// scriptText returns body with the lib functions it calls before it, or,
// when body holds the libSplit line (a whole line, at the top level), those
// its first part calls before it and the rest at that line. It panics on a
// libSplit that is not a line of its own: the scripts are embedded.
func scriptText(lib, body string) string {
	head, tail, ok := strings.Cut(body, "\n"+libSplit+"\n")
	if !ok {
		if strings.Contains(body, libSplit) {
			panic(fmt.Sprintf("redisbroker: %q is not a line of its own", libSplit))
		}
		return trimLib(lib, body) + "\n" + body
	}
	head += "\n"
	l := parseLib(lib)
	first := l.keep(l.setup+"\n"+head, nil)
	rest := l.keep(tail, first)
	return l.text(first, true) + "\n" + head + l.text(rest, false) + "\n" + tail
}

// parsedLib is lib.lua cut into its items (functions and constants) and
// the rest.
type parsedLib struct {
	items []libItem
	// rest is lib's other lines in order, an item's place held by "\x00"
	// and its name.
	rest []string
	// setup is rest's code (not comments): what it names is kept.
	setup string
}

type libItem struct {
	name     string
	text     string
	constant bool // a constant, named rather than called
}

// usedIn reports whether text calls f, or names it if it is a constant.
func (f libItem) usedIn(text string) bool {
	if f.constant {
		return names(text, f.name)
	}
	return calls(text, f.name)
}

func parseLib(lib string) parsedLib {
	var l parsedLib
	lines := strings.Split(lib, "\n")
	for i := 0; i < len(lines); i++ {
		m := libFunc.FindStringSubmatch(lines[i])
		c := libConst.FindStringSubmatch(lines[i])
		if m == nil && c == nil {
			l.rest = append(l.rest, lines[i])
			continue
		}
		// The comment lines just above belong to the function or constant.
		start := len(l.rest)
		for start > 0 && strings.HasPrefix(l.rest[start-1], "--") {
			start--
		}
		text := append(append([]string(nil), l.rest[start:]...), lines[i])
		l.rest = l.rest[:start]
		if c != nil {
			l.items = append(l.items, libItem{name: c[1], text: strings.Join(text, "\n"), constant: true})
			l.rest = append(l.rest, "\x00"+c[1])
			continue
		}
		for i++; i < len(lines); i++ {
			text = append(text, lines[i])
			if lines[i] == "end" {
				break
			}
		}
		l.items = append(l.items, libItem{name: m[1], text: strings.Join(text, "\n")})
		l.rest = append(l.rest, "\x00"+m[1]) // a placeholder keeps the order
	}
	var setup []string
	for _, line := range l.rest {
		if !strings.HasPrefix(line, "\x00") && !strings.HasPrefix(strings.TrimSpace(line), "--") {
			setup = append(setup, line)
		}
	}
	l.setup = strings.Join(setup, "\n")
	return l
}

// keep returns the functions body calls, directly or through the functions
// it keeps, counting those of have as kept already.
func (l parsedLib) keep(body string, have map[string]bool) map[string]bool {
	keep := map[string]bool{}
	kept := func(name string) bool { return keep[name] || have[name] }
	for changed := true; changed; {
		changed = false
		for _, f := range l.items {
			if kept(f.name) {
				continue
			}
			if f.usedIn(body) {
				keep[f.name], changed = true, true
				continue
			}
			for _, g := range l.items {
				if kept(g.name) && f.usedIn(g.text) {
					keep[f.name], changed = true, true
					break
				}
			}
		}
	}
	return keep
}

// text returns the functions of keep in lib's order, with lib's other
// lines when all is set.
func (l parsedLib) text(keep map[string]bool, all bool) string {
	texts := map[string]string{}
	for _, f := range l.items {
		texts[f.name] = f.text
	}
	out := make([]string, 0, len(l.rest))
	for _, line := range l.rest {
		if name, ok := strings.CutPrefix(line, "\x00"); ok {
			if keep[name] {
				out = append(out, texts[name])
			}
			continue
		}
		if all {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// names reports whether text holds name as a whole identifier.
func names(text, name string) bool {
	return findIdent(text, name, func(next byte) bool { return !isIdentByte(next) })
}

// calls reports whether text calls the function name: "name(" not preceded
// by a letter, digit or underscore.
func calls(text, name string) bool {
	return findIdent(text, name, func(next byte) bool { return next == '(' })
}

// findIdent reports whether text holds name not preceded by a letter,
// digit or underscore and followed by a byte next accepts (0 at the end).
func findIdent(text, name string, next func(byte) bool) bool {
	for i := 0; ; {
		j := strings.Index(text[i:], name)
		if j < 0 {
			return false
		}
		j += i
		var after byte
		if end := j + len(name); end < len(text) {
			after = text[end]
		}
		if (j == 0 || !isIdentByte(text[j-1])) && next(after) {
			return true
		}
		i = j + 1
	}
}

func isIdentByte(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
