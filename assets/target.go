package assets

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
)

// maxURLLength bounds the URLs the Fetcher accepts, and so the keys of the
// cache's index.
const maxURLLength = 32 << 10

// target is a URL that the Fetcher accepted, normalised so that one resource
// has one spelling: the scheme and host in lower case, the host without a
// trailing dot, no default port, "/" for an empty path, no fragment.
type target struct {
	url    *url.URL
	host   string // host name or IP address, without brackets or port
	port   uint16 // the URL's port, or the scheme's default
	origin string // scheme://host[:port]
}

// String returns the normalised URL.
func (t target) String() string { return t.url.String() }

// parseTarget parses an absolute http or https URL. Its error is a reason
// for a person, without the URL.
func parseTarget(raw string) (target, error) {
	if len(raw) > maxURLLength {
		return target{}, fmt.Errorf("the URL is longer than %d KiB", maxURLLength>>10)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return target{}, fmt.Errorf("not a valid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return target{}, errors.New("not an absolute URL")
		}
		return target{}, fmt.Errorf("only http and https URLs are fetched, not %s:", u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" {
		return target{}, errors.New("the URL has no host")
	}
	if u.User != nil {
		return target{}, errors.New("the URL carries a user name or password, which are never sent")
	}
	t := target{url: u}
	hostname := u.Hostname()
	if strings.HasPrefix(u.Host, "[") {
		ip, err := netip.ParseAddr(hostname)
		if err != nil || !ip.Is6() || ip.Zone() != "" {
			return target{}, fmt.Errorf("%q is not an IPv6 address without a zone", hostname)
		}
		t.host = ip.String()
	} else if t.host, err = normalizeHostname(hostname); err != nil {
		return target{}, err
	}
	defaultPort := uint16(80)
	if u.Scheme == "https" {
		defaultPort = 443
	}
	t.port = defaultPort
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return target{}, fmt.Errorf("port %q is not a number from 1 to 65535", p)
		}
		t.port = uint16(n)
	}
	u.Host = t.host
	if strings.Contains(t.host, ":") {
		u.Host = "[" + t.host + "]"
	}
	if t.port != defaultPort {
		u.Host = net.JoinHostPort(t.host, strconv.Itoa(int(t.port)))
	}
	if u.Path == "" {
		u.Path, u.RawPath = "/", ""
	}
	u.Fragment, u.RawFragment = "", ""
	t.origin = u.Scheme + "://" + u.Host
	return t, nil
}

// parseOrigins normalises the Config.Origins entries.
func parseOrigins(origins []string) (map[string]bool, error) {
	m := make(map[string]bool, len(origins))
	for _, o := range origins {
		t, err := parseTarget(o)
		if err == nil && (t.url.Path != "" && t.url.Path != "/" || t.url.RawQuery != "" || t.url.ForceQuery) {
			err = errors.New("an origin has no path or query")
		}
		if err != nil {
			return nil, fmt.Errorf("assets: Origins entry %q: %w; want scheme://host[:port], such as https://shop.example.com", o, err)
		}
		m[t.origin] = true
	}
	return m, nil
}

// parseGlobs checks and lower-cases the host globs of Allow or Deny (named
// by field, for errors).
func parseGlobs(field string, globs []string) ([]string, error) {
	out := make([]string, 0, len(globs))
	for _, g := range globs {
		var err error
		lg := strings.ToLower(strings.TrimSuffix(g, "."))
		switch {
		case lg == "":
			err = errors.New("empty")
		case strings.Contains(lg, "/"):
			err = errors.New("a host glob matches host names, not URLs")
		default:
			if _, _, perr := net.SplitHostPort(lg); perr == nil {
				err = errors.New("a host glob matches host names without a port")
			} else if _, merr := path.Match(lg, ""); merr != nil {
				err = errors.New("malformed pattern (path.Match syntax: *, ?, [a-z], \\)")
			}
		}
		if err != nil {
			return nil, fmt.Errorf("assets: %s entry %q: %w; want a host name or a glob such as *.example.com", field, g, err)
		}
		out = append(out, lg)
	}
	return out, nil
}

// matchGlob returns the first of globs that matches host, or "".
func matchGlob(globs []string, host string) string {
	for _, g := range globs {
		if ok, _ := path.Match(g, host); ok {
			return g
		}
	}
	return ""
}
