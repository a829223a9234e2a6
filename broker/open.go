package broker

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
)

// OpenFunc opens a broker from a parsed URL. Brokers register one with
// Register for each URL scheme they serve.
type OpenFunc func(ctx context.Context, u *url.URL) (Broker, error)

var (
	openersMu sync.RWMutex
	openers   = map[string]OpenFunc{}
)

// Register makes a broker available to Open under a URL scheme, as
// database/sql drivers do: the Redis broker registers "redis" and "rediss"
// and the SQLite broker "sqlite" in their init functions, so importing a
// broker package (even as _) is enough. Registering a scheme twice, an
// empty scheme or a nil OpenFunc panics: it is a programming error found
// at start-up.
func Register(scheme string, open OpenFunc) {
	openersMu.Lock()
	defer openersMu.Unlock()
	switch {
	case scheme == "" || scheme != strings.ToLower(scheme):
		panic(fmt.Sprintf("broker: register: scheme %q must be non-empty and lower-case", scheme))
	case open == nil:
		panic(fmt.Sprintf("broker: register %q: open func is nil", scheme))
	case openers[scheme] != nil:
		panic(fmt.Sprintf("broker: register %q: scheme registered twice", scheme))
	}
	openers[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	openersMu.RLock()
	defer openersMu.RUnlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Open opens the broker a URL names:
//
//	redis://[user:password@]host:port/db[?prefix=aibos:worker]   Redis (rediss:// for TLS)
//	redis+sentinel://s1:26379,s2:26379/mymaster[?db=N]           Redis through Sentinel
//	redis+cluster://h1:6379,h2:6379[?prefix=aibos:worker]        a Redis Cluster (database 0 only)
//	sqlite:data/worker.db   sqlite:///var/lib/aibos/worker.db     the embedded store
//	data/worker.db          ./worker.db   /var/lib/worker.db      a plain path: the embedded store
//
// Query parameters are the broker's own (see the broker package's doc);
// an unknown one is an error. The broker's package must be imported, for
// example as _ "github.com/aibos/worker/broker/sqlitebroker"; Open says
// which when it is not. The caller closes the broker.
func Open(ctx context.Context, rawURL string) (Broker, error) {
	scheme, u, err := parseBrokerURL(rawURL)
	if err != nil {
		return nil, err
	}
	openersMu.RLock()
	open := openers[scheme]
	openersMu.RUnlock()
	if open == nil {
		hint := ""
		switch scheme {
		case "redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster":
			hint = ` (import _ "github.com/aibos/worker/broker/redisbroker")`
		case "sqlite":
			hint = ` (import _ "github.com/aibos/worker/broker/sqlitebroker")`
		}
		return nil, fmt.Errorf("broker: open %s: no broker registered for scheme %q%s; registered: %v",
			redact(u), scheme, hint, Schemes())
	}
	b, err := open(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("broker: open %s: %w", redact(u), err)
	}
	return b, nil
}

// parseBrokerURL parses rawURL; a string with no scheme is a file path for
// the embedded store.
func parseBrokerURL(rawURL string) (string, *url.URL, error) {
	if strings.TrimSpace(rawURL) == "" {
		return "", nil, errors.New("broker: open: url is empty")
	}
	if !strings.Contains(rawURL, ":") || strings.HasPrefix(rawURL, "/") || strings.HasPrefix(rawURL, ".") {
		return "sqlite", &url.URL{Scheme: "sqlite", Opaque: rawURL}, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// *url.Error quotes the whole URL, password included: keep only
		// what is wrong with it.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", nil, fmt.Errorf("broker: open: url does not parse: %v", err)
	}
	if u.Scheme == "" {
		return "", nil, fmt.Errorf("broker: open %q: url has no scheme", rawURL)
	}
	return strings.ToLower(u.Scheme), u, nil
}

// redact returns u as text without its password, for error messages.
func redact(u *url.URL) string {
	return u.Redacted()
}

// SQLitePath returns the file path an embedded-store URL names:
// sqlite:rel/path, sqlite:/abs/path, sqlite:///abs/path or
// sqlite://localhost/abs/path. Brokers call it; it is exported so that
// every embedded store reads paths one way.
func SQLitePath(u *url.URL) (string, error) {
	var p string
	switch {
	case u.Opaque != "":
		p = u.Opaque
	case u.Host == "" || u.Host == "localhost":
		p = u.Path
	default:
		return "", fmt.Errorf("sqlite url names host %q: the embedded store is a local file (use sqlite:///path)", u.Host)
	}
	if p == "" {
		return "", errors.New("sqlite url names no file (use sqlite:data/worker.db)")
	}
	return p, nil
}
