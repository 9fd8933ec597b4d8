//go:build !unix

package proxy

import "net"

// idleProbe is a no-op where the proxy cannot read a socket without
// blocking: an idle connection's stray bytes are then only caught when they
// cannot start an answer (errNotAnAnswer).
type idleProbe struct{}

func newIdleProbe(net.Conn) *idleProbe { return nil }

func (*idleProbe) sentWhileIdle() bool { return false }
