package faults

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
)

// Proxy is a TCP fault proxy between the workers and Redis: it forwards,
// refuses (closes every connection and stops listening, so connects get
// ECONNREFUSED), or drops (accepts and keeps connections but silently
// discards every byte both ways, as a partition does).
type Proxy struct {
	Addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	mode  string // "pass", "refuse" or "drop"
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// NewProxy listens on a free loopback port and forwards to target.
func NewProxy(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("start the fault proxy: %w", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, mode: "pass", conns: map[net.Conn]bool{}}
	p.serve(ln)
	return p, nil
}

func (p *Proxy) serve(ln net.Listener) {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.handle(c)
		}
	}()
}

// handle forwards one client connection (or swallows it, in drop mode).
func (p *Proxy) handle(c net.Conn) {
	p.mu.Lock()
	mode := p.mode
	p.conns[c] = true
	p.mu.Unlock()
	var up net.Conn
	if mode == "pass" {
		var err error
		if up, err = net.Dial("tcp", p.target); err != nil {
			p.close(c)
			return
		}
		p.mu.Lock()
		p.conns[up] = true
		p.mu.Unlock()
	}
	p.wg.Add(2)
	go func() { defer p.wg.Done(); p.pipe(up, c) }()
	go func() {
		defer p.wg.Done()
		if up != nil {
			p.pipe(c, up)
		}
	}()
}

// pipe copies src to dst while the proxy passes, discards while it drops,
// and closes both at the end.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.close(src)
	if dst != nil {
		defer p.close(dst)
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			pass := p.mode == "pass"
			p.mu.Unlock()
			if pass && dst != nil {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) close(c net.Conn) {
	_ = c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// closeAll closes every connection.
func (p *Proxy) closeAll() {
	p.mu.Lock()
	cs := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		cs = append(cs, c)
	}
	p.mu.Unlock()
	for _, c := range cs {
		p.close(c)
	}
}

// Refuse closes every connection and stops listening.
func (p *Proxy) Refuse() {
	p.mu.Lock()
	p.mode = "refuse"
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	p.closeAll()
}

// Drop keeps every connection open but discards what passes.
func (p *Proxy) Drop() {
	p.mu.Lock()
	p.mode = "drop"
	p.mu.Unlock()
}

// Pass forwards again: connections that lived through a drop are closed
// (their streams lost bytes; the clients reconnect), and a refusing proxy
// listens again on its address.
func (p *Proxy) Pass() error {
	p.mu.Lock()
	was := p.mode
	p.mode = "pass"
	p.mu.Unlock()
	switch was {
	case "drop":
		p.closeAll()
	case "refuse":
		ln, err := net.Listen("tcp", p.Addr)
		if err != nil {
			return fmt.Errorf("fault proxy: listen again on %s: %w", p.Addr, err)
		}
		p.mu.Lock()
		p.ln = ln
		p.mu.Unlock()
		p.serve(ln)
	}
	return nil
}

// Close stops the proxy and waits for its goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	p.mu.Unlock()
	var err error
	if ln != nil {
		if err = ln.Close(); errors.Is(err, net.ErrClosed) {
			err = nil
		}
	}
	p.closeAll()
	p.wg.Wait()
	return err
}

var _ io.Closer = (*Proxy)(nil)
