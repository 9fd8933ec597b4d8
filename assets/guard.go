package assets

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The SSRF guard. Every connection the Fetcher opens goes through
// guard.dialContext, whose net.Dialer calls guard.check from its Control hook:
// after the name was resolved and the socket created, before connect(2). The
// check therefore sees the address actually dialled, whichever way it was
// resolved (a DNS name pointing at a private address, a rebinding DNS server
// answering differently the second time, a numeric host such as 2130706433
// that the C resolver reads as 127.0.0.1), and a refused address never gets a
// packet.

// metadataAddrs are the cloud providers' instance metadata services. They are
// refused even when AllowPrivate lists them: they hand out credentials.
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), // AWS, GCP, Azure, Oracle, DigitalOcean, OpenStack
	netip.MustParseAddr("169.254.170.2"),   // AWS ECS task metadata and credentials
	netip.MustParseAddr("169.254.170.23"),  // AWS EKS pod identity
	netip.MustParseAddr("fd00:ec2::254"),   // AWS over IPv6
	netip.MustParseAddr("fd00:ec2::23"),    // AWS EKS pod identity over IPv6
	netip.MustParseAddr("100.100.100.200"), // Alibaba Cloud
}

// specialPrefixes are the ranges that are not public unicast addresses, with
// what to call them in an error. An address in one of them is refused unless
// AllowPrivate lists it.
var specialPrefixes = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "an unspecified (this-network) address"},
	{netip.MustParsePrefix("10.0.0.0/8"), "a private address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT (shared) address"},
	{netip.MustParsePrefix("127.0.0.0/8"), "a loopback address"},
	{netip.MustParsePrefix("169.254.0.0/16"), "a link-local address"},
	{netip.MustParsePrefix("172.16.0.0/12"), "a private address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("192.88.99.0/24"), "a 6to4 relay address"},
	{netip.MustParsePrefix("192.168.0.0/16"), "a private address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("224.0.0.0/4"), "a multicast address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved or broadcast address"},

	{netip.MustParsePrefix("::/128"), "an unspecified address"},
	{netip.MustParsePrefix("::1/128"), "a loopback address"},
	{netip.MustParsePrefix("::/96"), "an IPv4-compatible IPv6 address (deprecated)"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "an IPv4-translated IPv6 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a local-use NAT64 address"},
	{netip.MustParsePrefix("100::/64"), "a discard-only address"},
	{netip.MustParsePrefix("2001::/23"), "an IETF special-purpose address (Teredo, ORCHID, ...)"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("fc00::/7"), "a private (unique local) address"},
	{netip.MustParsePrefix("fe80::/10"), "a link-local address"},
	{netip.MustParsePrefix("fec0::/10"), "a site-local address"},
	{netip.MustParsePrefix("ff00::/8"), "a multicast address"},
}

var (
	nat64Prefix = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour   = netip.MustParsePrefix("2002::/16")
)

// refusal returns why the Fetcher never connects to ip unless AllowPrivate
// lists it, as a phrase such as "a loopback address", or "" for a public
// unicast address; metadata is true for an address that AllowPrivate cannot
// allow: a cloud metadata service (or an IPv6 form of one), or no address.
// An IPv6 address that carries an IPv4 address (IPv4-mapped, NAT64, 6to4)
// is judged by the IPv4 address too.
func refusal(ip netip.Addr) (reason string, metadata bool) {
	if !ip.IsValid() {
		return "not an IP address", true
	}
	ip = ip.WithZone("") // a zoned address matches no prefix
	if ip.Is4In6() {
		return refusal(ip.Unmap())
	}
	for _, m := range metadataAddrs {
		if ip == m {
			return "a cloud metadata address", true
		}
	}
	if ip.Is6() {
		var v4 netip.Addr
		b := ip.As16()
		switch {
		case nat64Prefix.Contains(ip):
			v4 = netip.AddrFrom4([4]byte(b[12:16]))
		case sixToFour.Contains(ip):
			v4 = netip.AddrFrom4([4]byte(b[2:6]))
		}
		if v4.IsValid() {
			if reason, metadata := refusal(v4); reason != "" {
				return fmt.Sprintf("an IPv6 address that reaches %s, %s", v4, reason), metadata
			}
		}
	}
	for _, p := range specialPrefixes {
		if p.prefix.Contains(ip) {
			return p.what, false
		}
	}
	return "", false
}

// badPorts are the ports that browsers refuse to fetch from (the Fetch
// standard's "bad port" list), because a GET sent to them could be read as a
// command by another protocol's server.
var badPorts = map[uint16]bool{
	0: true, 1: true, 7: true, 9: true, 11: true, 13: true, 15: true, 17: true, 19: true, 20: true,
	21: true, 22: true, 23: true, 25: true, 37: true, 42: true, 43: true, 53: true, 69: true,
	77: true, 79: true, 87: true, 95: true, 101: true, 102: true, 103: true, 104: true, 109: true,
	110: true, 111: true, 113: true, 115: true, 117: true, 119: true, 123: true, 135: true,
	137: true, 139: true, 143: true, 161: true, 179: true, 389: true, 427: true, 465: true,
	512: true, 513: true, 514: true, 515: true, 526: true, 530: true, 531: true, 532: true,
	540: true, 548: true, 554: true, 556: true, 563: true, 587: true, 601: true, 636: true,
	989: true, 990: true, 993: true, 995: true, 1719: true, 1720: true, 1723: true, 2049: true,
	3659: true, 4045: true, 4190: true, 5060: true, 5061: true, 6000: true, 6566: true,
	6665: true, 6666: true, 6667: true, 6668: true, 6669: true, 6679: true, 6697: true,
	10080: true,
}

// guard decides which addresses the Fetcher may connect to.
type guard struct {
	// allowPrivate holds the normalised AllowPrivate entries: "host:port"
	// with a lower-case name, or an unmapped IP address with its port.
	allowPrivate map[string]bool
	dialTimeout  time.Duration
}

// parseAllowPrivate normalises the AllowPrivate entries, refusing those that
// are not host:port and those that name a metadata address.
func parseAllowPrivate(entries []string) (map[string]bool, error) {
	m := make(map[string]bool, len(entries))
	for _, e := range entries {
		key, err := allowPrivateKey(e)
		if err != nil {
			return nil, fmt.Errorf("assets: AllowPrivate entry %q: %w", e, err)
		}
		m[key] = true
	}
	return m, nil
}

func allowPrivateKey(entry string) (string, error) {
	host, port, err := net.SplitHostPort(entry)
	if err != nil {
		return "", fmt.Errorf("want host:port or ip:port, such as cdn.intranet:443 or 10.0.0.5:8080 ([::1]:8080 for IPv6)")
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return "", fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if reason, metadata := refusal(ip); metadata {
			return "", fmt.Errorf("%s is %s, which is always refused", ip, reason)
		}
		return netip.AddrPortFrom(ip.Unmap(), uint16(p)).String(), nil
	}
	name, err := normalizeHostname(host)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(name, port), nil
}

// refusedError is a connection the guard refused; Fetch turns it into
// ErrNotAllowed.
type refusedError struct{ reason string }

func (e *refusedError) Error() string { return e.reason }

// dialContext is the Transport's DialContext. addr is the host:port of the
// URL being fetched.
func (g *guard) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{
		Timeout:   g.dialTimeout,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			return g.check(network, addr, address)
		},
	}
	return d.DialContext(ctx, network, addr)
}

// check returns a *refusedError unless the connection to dialled (an
// ip:port, as the net.Dialer's Control hook gets it) for the URL's
// requested host:port may go ahead.
func (g *guard) check(network, requested, dialled string) error {
	if network != "tcp4" && network != "tcp6" {
		return &refusedError{fmt.Sprintf("%s is not a TCP connection", network)}
	}
	ap, err := netip.ParseAddrPort(dialled)
	if err != nil {
		return &refusedError{fmt.Sprintf("cannot tell where %s is", dialled)}
	}
	reason, metadata := refusal(ap.Addr())
	if reason == "" {
		return nil
	}
	if !metadata {
		if g.allowPrivate[netip.AddrPortFrom(ap.Addr().WithZone("").Unmap(), ap.Port()).String()] {
			return nil
		}
		if key, err := allowPrivateKey(requested); err == nil && g.allowPrivate[key] {
			return nil
		}
	}
	host, _, _ := net.SplitHostPort(requested)
	if ip, err := netip.ParseAddr(host); err == nil && ip.WithZone("") == ap.Addr().WithZone("") {
		return &refusedError{fmt.Sprintf("%s is %s", dialled, reason)}
	}
	return &refusedError{fmt.Sprintf("%s resolves to %s, %s", requested, ap.Addr(), reason)}
}

// normalizeHostname returns a host name (not an IP literal) in lower case
// without a trailing dot, or an error if it is not a DNS name: an empty
// label, a label over 63 bytes, over 253 bytes in all, or a character that
// has no place in an ASCII host name.
func normalizeHostname(host string) (string, error) {
	h := strings.TrimSuffix(host, ".")
	if h == "" || len(h) > 253 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
		return "", fmt.Errorf("%q is not a host name", host)
	}
	for label := range strings.SplitSeq(h, ".") {
		if len(label) > 63 {
			return "", fmt.Errorf("host name %q has a label longer than 63 bytes", host)
		}
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '.', c == '_':
		case 'A' <= c && c <= 'Z':
		default:
			return "", fmt.Errorf("host name %q has a character other than ASCII letters, digits, '-', '_' and '.' (write international names in punycode)", host)
		}
	}
	return strings.ToLower(h), nil
}
