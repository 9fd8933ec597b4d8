//go:build unix

package proxy

import (
	"crypto/tls"
	"errors"
	"net"
	"syscall"
)

// An idleProbe looks, without blocking, at whether the upstream sent
// anything on an idle connection, or closed it (see sentWhileIdle).
type idleProbe struct {
	raw  syscall.RawConn
	read func(fd uintptr) bool // reads one byte into buf; made once, so a probe allocates nothing
	n    int
	err  error
	buf  [1]byte
}

// newIdleProbe returns a probe of conn's socket (under its TLS, for a
// tls.Conn), or nil if conn has no socket to look at.
func newIdleProbe(conn net.Conn) *idleProbe {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &idleProbe{raw: raw}
	p.read = func(fd uintptr) bool {
		p.n, p.err = syscall.Read(int(fd), p.buf[:])
		return true // done, whatever the answer: the probe never waits
	}
	return p
}

// sentWhileIdle reports whether the connection's socket holds bytes or its
// end, with one non-blocking read (Go's sockets are non-blocking): on an
// idle connection, whatever the upstream sent there is part of no answer
// to come, and a byte read is lost with it, so the connection is done with.
// A nil probe reports false.
func (p *idleProbe) sentWhileIdle() bool {
	if p == nil {
		return false
	}
	if err := p.raw.Read(p.read); err != nil {
		return true // the connection is closed
	}
	return !errors.Is(p.err, syscall.EAGAIN) // a byte (n 1), the end (n 0, no error), or an error
}
