// Package forwarded decides what the X-Forwarded-* headers of a request may
// tell cobrowse's listeners: nothing, unless the request's TCP peer is a
// reverse proxy or load balancer that the operator trusts (--trusted-proxy).
//
// Any client can send X-Forwarded-Proto and X-Forwarded-For. Behind a
// TLS-terminating proxy, though, the connection to cobrowse is plain HTTP
// from the proxy's address, and only the proxy's headers say that the
// visitor's browser used https, and from where. Proxies holds the networks
// whose headers are believed; everyone else's are ignored, as if absent.
//
// Only X-Forwarded-Proto and X-Forwarded-For are read: they are what Caddy,
// nginx (as configured in docs/deploy.md), cloud load balancers and
// Kubernetes ingresses send. RFC 7239's Forwarded header is not read, and
// neither is X-Forwarded-Host: the host is always the request's Host, which
// these proxies pass on.
package forwarded

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// Proxies is the set of networks whose hosts are trusted reverse proxies.
// The zero value trusts no one. A *Proxies is a flag.Value: Set adds a
// comma-separated list.
type Proxies struct {
	nets []netip.Prefix
}

// ParseProxies returns the Proxies of a comma-separated list of IP
// addresses and CIDR networks, such as "10.0.0.0/8,127.0.0.1,::1".
func ParseProxies(list string) (Proxies, error) {
	var p Proxies
	err := p.Set(list)
	return p, err
}

// Set adds the comma-separated IP addresses and CIDR networks of list. An
// address is a network of that one address. An item that is neither (a host
// name, a port, an empty item) is an error naming it, and nothing of list
// is added.
func (p *Proxies) Set(list string) error {
	var nets []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		n, err := parseNet(strings.TrimSpace(item))
		if err != nil {
			return err
		}
		nets = append(nets, n)
	}
	p.nets = append(p.nets, nets...)
	return nil
}

// parseNet parses one address or network. IPv4-mapped IPv6 forms are
// taken as the IPv4 address or network they map, since that is how
// Trusts compares peers.
func parseNet(s string) (netip.Prefix, error) {
	bad := func() error {
		return fmt.Errorf("%q is not an IP address or CIDR network, such as 10.0.0.0/8, 127.0.0.1 or fd00::/8 (host names are not resolved)", s)
	}
	if strings.Contains(s, "/") {
		n, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, bad()
		}
		if a := n.Addr(); a.Is4In6() {
			if n.Bits() < 96 {
				return netip.Prefix{}, bad()
			}
			n = netip.PrefixFrom(a.Unmap(), n.Bits()-96)
		}
		return n.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, bad()
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// String returns the networks, comma-separated.
func (p *Proxies) String() string {
	if p == nil {
		return ""
	}
	s := make([]string, len(p.nets))
	for i, n := range p.nets {
		s[i] = n.String()
	}
	return strings.Join(s, ",")
}

// IsZero reports whether p trusts no one.
func (p Proxies) IsZero() bool { return len(p.nets) == 0 }

// Trusts reports whether r's TCP peer (r.RemoteAddr, as net/http's server
// sets it) is in one of p's networks. A RemoteAddr that is not an IP
// address and port is not trusted.
func (p Proxies) Trusts(r *http.Request) bool {
	if len(p.nets) == 0 {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && p.contains(ap.Addr())
}

// contains reports whether a (IPv4-mapped IPv6 forms taken as IPv4, zones
// ignored) is in one of p's networks.
func (p Proxies) contains(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, n := range p.nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// Scheme returns the scheme with which the visitor's browser sent r, "https"
// or "http": the X-Forwarded-Proto of a trusted proxy if it sent exactly one
// value and that is http or https (in any case); otherwise https if r came
// over TLS to this server and http if not.
func (p Proxies) Scheme(r *http.Request) string {
	if p.Trusts(r) {
		if v := r.Header["X-Forwarded-Proto"]; len(v) == 1 {
			switch proto := strings.TrimSpace(v[0]); {
			case strings.EqualFold(proto, "https"):
				return "https"
			case strings.EqualFold(proto, "http"):
				return "http"
			}
		}
	}
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// For returns the X-Forwarded-For values (each a comma-separated chain of
// client addresses) that a trusted proxy sent with r, in order, for the
// caller to pass on with the proxy's own address appended; nil if r's peer
// is not trusted or sent none. The values are r's own: do not modify them.
func (p Proxies) For(r *http.Request) []string {
	if !p.Trusts(r) {
		return nil
	}
	return r.Header["X-Forwarded-For"]
}

// Client returns the address of the client that sent r, for logs and the
// audit trail: r.RemoteAddr (host and port) unless r's peer is a trusted
// proxy; then the nearest address in X-Forwarded-For that is not itself a
// trusted proxy (the chain read right to left, as each proxy appended its
// peer), or the leftmost one if all are. Entries further left than the
// first untrusted one are whatever the client put there, and are skipped.
// An entry that is not an IP address is returned as it is, trimmed.
func (p Proxies) Client(r *http.Request) string {
	chain := p.For(r)
	leftmost := r.RemoteAddr // so far
	for i := len(chain) - 1; i >= 0; i-- {
		entries := strings.Split(chain[i], ",")
		for j := len(entries) - 1; j >= 0; j-- {
			entry := strings.TrimSpace(entries[j])
			if entry == "" {
				continue
			}
			if a, err := netip.ParseAddr(entry); err != nil || !p.contains(a) {
				return entry
			}
			leftmost = entry
		}
	}
	return leftmost
}
