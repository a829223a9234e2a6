package redisbroker

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Topology names how a URL reaches Redis.
type Topology string

// The topologies ParseURL reads, by URL scheme.
const (
	Standalone Topology = "standalone" // redis://, rediss://
	Sentinel   Topology = "sentinel"   // redis+sentinel://, rediss+sentinel://
	Cluster    Topology = "cluster"    // redis+cluster://, rediss+cluster://
)

// ClusterStateReload is how often a Cluster client made by ParseURL reloads
// the slot map while it is in use. go-redis reloads it on a MOVED reply but
// not when a master stops answering, so with its default (a minute) a
// client keeps calling a killed master for up to a minute after a replica
// took its slots; one CLUSTER SLOTS a second costs next to nothing.
const ClusterStateReload = time.Second

// ClientOptions is what a Redis URL says, for the topology it names:
// exactly one of Simple, Failover and Cluster is set. Change the options
// before NewClient (the service sets its database and pool size so).
type ClientOptions struct {
	Topology Topology
	Simple   *redis.Options         // Standalone
	Failover *redis.FailoverOptions // Sentinel
	Cluster  *redis.ClusterOptions  // Cluster
}

// ParseURL parses a Redis URL of any topology. The scheme picks it:
//
//	redis://[user:password@]host:6379[/db][?option=value]
//	    one server (rediss:// for TLS); options as redis.ParseURL reads them
//	redis+sentinel://[user:password@]s1:26379[,s2:26379...]/master[?db=N&password=...]
//	    the master Sentinel names (rediss+sentinel:// for TLS); options as
//	    redis.ParseFailoverURL reads them: the user and password in the
//	    authority are the sentinels', username= and password= the master's
//	redis+cluster://[user:password@]h1:6379[,h2:6379...][?option=value]
//	    a Redis Cluster reached through any of the nodes listed (rediss+cluster://
//	    for TLS); options as redis.ParseClusterURL reads them. A cluster has
//	    only database 0: a URL naming another is an error
//
// More hosts can also be given as addr=host:port parameters, as go-redis
// reads them (the way to list IPv6 addresses). An unknown option is an
// error. Every client made from the options honours each call's context
// deadline (ContextTimeoutEnabled): see Open.
func ParseURL(rawURL string) (*ClientOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// *url.Error quotes the whole URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, err
	}
	base, topology, ok := strings.Cut(strings.ToLower(u.Scheme), "+")
	if base != "redis" && base != "rediss" || ok && topology != string(Sentinel) && topology != string(Cluster) {
		return nil, fmt.Errorf("scheme %q is none of redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster, rediss+cluster", u.Scheme)
	}
	if !ok {
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		o.ContextTimeoutEnabled = true
		return &ClientOptions{Topology: Standalone, Simple: o}, nil
	}
	// go-redis reads one host and more as addr= parameters.
	c := *u
	c.Scheme = base
	q := c.Query()
	hosts := strings.Split(u.Host, ",")
	if slices.Contains(hosts, "") {
		return nil, fmt.Errorf("host list %q has an empty entry", u.Host)
	}
	c.Host = hosts[0]
	q["addr"] = append(hosts[1:], q["addr"]...)
	if topology == string(Cluster) {
		if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
			return nil, fmt.Errorf("path %q names a database, but a Redis Cluster has only database 0", u.Path)
		}
		c.Path, c.RawQuery = "", q.Encode()
		o, err := redis.ParseClusterURL(c.String())
		if err != nil {
			return nil, err
		}
		o.ContextTimeoutEnabled = true
		o.ClusterStateReloadInterval = ClusterStateReload
		return &ClientOptions{Topology: Cluster, Cluster: o}, nil
	}
	master := strings.Trim(u.Path, "/")
	if strings.Contains(master, "/") {
		return nil, fmt.Errorf("redis+sentinel url path %q is not one master name (give the database as ?db=N)", u.Path)
	}
	switch named := q.Get("master_name"); {
	case master == "" && named == "":
		return nil, errors.New("redis+sentinel url names no master (redis+sentinel://host:26379/mymaster)")
	case master != "" && named != "" && named != master:
		return nil, fmt.Errorf("redis+sentinel url names two masters, %q and %q", master, named)
	case master != "":
		q.Set("master_name", master)
	}
	c.Path, c.RawQuery = "", q.Encode()
	o, err := redis.ParseFailoverURL(c.String())
	if err != nil {
		return nil, err
	}
	o.ContextTimeoutEnabled = true
	return &ClientOptions{Topology: Sentinel, Failover: o}, nil
}

// TLS returns the TLS configuration of the options' connections: the one
// a rediss URL set up (server name from the host, TLS 1.2 or later), or
// nil for a redis URL, which speaks plain TCP. Change it in place to trust
// a private authority (RootCAs) or present a client certificate
// (Certificates) before NewClient; for Sentinel it is used for the
// sentinels and the master alike.
func (o *ClientOptions) TLS() *tls.Config {
	switch o.Topology {
	case Sentinel:
		return o.Failover.TLSConfig
	case Cluster:
		return o.Cluster.TLSConfig
	}
	return o.Simple.TLSConfig
}

// FirstAddr returns the first address the options' client dials: the
// server's, the first sentinel's or the first cluster node's ("" if none).
func (o *ClientOptions) FirstAddr() string {
	var addrs []string
	switch o.Topology {
	case Sentinel:
		addrs = o.Failover.SentinelAddrs
	case Cluster:
		addrs = o.Cluster.Addrs
	default:
		return o.Simple.Addr
	}
	if len(addrs) == 0 {
		return ""
	}
	return addrs[0]
}

// NewClient returns a client of the options' topology. The caller closes it.
func (o *ClientOptions) NewClient() redis.UniversalClient {
	switch o.Topology {
	case Sentinel:
		return redis.NewFailoverClient(o.Failover)
	case Cluster:
		return redis.NewClusterClient(o.Cluster)
	}
	return redis.NewClient(o.Simple)
}
