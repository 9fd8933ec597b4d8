package proxy

import (
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// testUpstream is the upstream of the header tests.
const testUpstream = "https://Shop-Backend.internal:8443"

// testOrigins returns the origins of a request for host, over TLS or not,
// proxied to testUpstream.
func testOrigins(t testing.TB, host string, overTLS bool) origins {
	t.Helper()
	up, err := url.Parse(testUpstream)
	if err != nil {
		t.Fatal(err)
	}
	return newOrigins(up, scheme(overTLS), host)
}

// scheme returns the public scheme of a visitor who came over TLS or not.
func scheme(overTLS bool) string {
	if overTLS {
		return "https"
	}
	return "http"
}

func TestNewOriginsForHeaders(t *testing.T) {
	tests := []struct {
		host    string
		overTLS bool
		want    string // public origin, or "" for none
	}{
		{"shop.example.com", true, "https://shop.example.com"},
		{"Shop.Example.COM:443", true, "https://shop.example.com"},
		{"shop.example.com:0443", true, "https://shop.example.com"},
		{"shop.example.com:8443", true, "https://shop.example.com:8443"},
		{"localhost:8080", false, "http://localhost:8080"},
		{"localhost:80", false, "http://localhost"},
		{"[::1]:8080", false, "http://[::1]:8080"},
		{"[::1]", true, "https://[::1]"},
		{"", false, ""},
		{":8080", false, ""},
		{"host:port", false, ""},
		{"host:70000", false, ""},
		{"[::1", false, ""},
		{"[::1]x", false, ""},
		{"shop.example.com;script-src", false, ""}, // no CSP source, nor URL host
		{"shop.example.com:8443@evil", false, ""},
	}
	for _, tt := range tests {
		o := testOrigins(t, tt.host, tt.overTLS)
		if got := o.public.String(); got != tt.want {
			t.Errorf("host %q, TLS %v: public origin %q, want %q", tt.host, tt.overTLS, got, tt.want)
		}
	}
	up := testOrigins(t, "x", true).upstream
	if got, want := up.String(), "https://shop-backend.internal:8443"; got != want {
		t.Errorf("upstream origin %q, want %q", got, want)
	}
}

func TestRewriteResponseHeadersZeroOrigins(t *testing.T) {
	h := http.Header{
		"Location":   {"https://shop-backend.internal:8443/x"},
		"Set-Cookie": {"id=1; Domain=shop-backend.internal; Secure; SameSite=None", "__Host-id=1; Secure; Path=/"},
	}
	want := h.Clone()
	if refused := (origins{}).rewriteResponseHeaders(h); refused != nil {
		t.Errorf("refused %q, want none", refused)
	}
	if !reflect.DeepEqual(h, want) {
		t.Errorf("headers %q, want them unchanged: %q", h, want)
	}
}

// headerTest is one header value and what rewriteResponseHeaders must make
// of it.
type headerTest struct {
	name, in, want string
}

// checkHeader runs tests on header key for the origins o.
func checkHeader(t *testing.T, o origins, key string, tests []headerTest) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{key: {tt.in}}
			if refused := o.rewriteResponseHeaders(h); refused != nil {
				t.Errorf("refused %q, want none", refused)
			}
			if got := h[key]; len(got) != 1 || got[0] != tt.want {
				t.Errorf("%s: %q\n got %q\nwant %q", key, tt.in, got, tt.want)
			}
		})
	}
}

// urlTests are the cases shared by Location and Content-Location, for a
// visitor on https://shop.example.com.
var urlTests = []headerTest{
	{"same origin", "https://shop-backend.internal:8443/cart?id=1#top", "https://shop.example.com/cart?id=1#top"},
	{"origin only", "https://shop-backend.internal:8443", "https://shop.example.com"},
	{"origin and slash", "https://shop-backend.internal:8443/", "https://shop.example.com/"},
	{"query right after host", "https://shop-backend.internal:8443?a=b", "https://shop.example.com?a=b"},
	{"fragment right after host", "https://shop-backend.internal:8443#x", "https://shop.example.com#x"},
	{"case", "HTTPS://SHOP-Backend.Internal:8443/A/%2F?Q=%41", "https://shop.example.com/A/%2F?Q=%41"},
	{"zero-padded port", "https://shop-backend.internal:08443/x", "https://shop.example.com/x"},
	{"userinfo kept", "https://user:pw@shop-backend.internal:8443/x", "https://user:pw@shop.example.com/x"},
	{"extra slashes", `https:///\shop-backend.internal:8443/x`, "https://shop.example.com/x"},
	{"protocol-relative", "//shop-backend.internal:8443/x?y", "//shop.example.com/x?y"},
	{"backslashes", `https:\\shop-backend.internal:8443\x`, `https://shop.example.com\x`},
	{"protocol-relative backslash", `\/shop-backend.internal:8443/x`, `//shop.example.com/x`},
	{"path bytes kept", "https://shop-backend.internal:8443/%7e/ü/a b/../c", "https://shop.example.com/%7e/ü/a b/../c"},
	{"surrounding space kept", " https://shop-backend.internal:8443/x ", " https://shop.example.com/x "},

	{"relative path", "/cart", "/cart"},
	{"relative path naming the host", "/shop-backend.internal:8443/x", "/shop-backend.internal:8443/x"},
	{"relative", "cart?x=https://shop-backend.internal:8443/", "cart?x=https://shop-backend.internal:8443/"},
	{"other scheme", "http://shop-backend.internal:8443/x", "http://shop-backend.internal:8443/x"},
	{"default port is another port", "https://shop-backend.internal/x", "https://shop-backend.internal/x"},
	{"other port", "https://shop-backend.internal:8444/x", "https://shop-backend.internal:8444/x"},
	{"other host", "https://cdn.example.net/x", "https://cdn.example.net/x"},
	{"subdomain", "https://a.shop-backend.internal:8443/x", "https://a.shop-backend.internal:8443/x"},
	{"suffix", "https://shop-backend.internal.evil:8443/x", "https://shop-backend.internal.evil:8443/x"},
	{"userinfo naming the host", "https://shop-backend.internal:8443@evil.example/x", "https://shop-backend.internal:8443@evil.example/x"},
	{"trailing dot", "https://shop-backend.internal.:8443/x", "https://shop-backend.internal.:8443/x"},
	{"protocol-relative other port", "//shop-backend.internal/x", "//shop-backend.internal/x"},
	{"no slashes", "https:shop-backend.internal:8443/x", "https:shop-backend.internal:8443/x"},
	{"one slash", "https:/shop-backend.internal:8443/x", "https:/shop-backend.internal:8443/x"},
	{"bad port", "https://shop-backend.internal:84x3/x", "https://shop-backend.internal:84x3/x"},
	{"huge port", "https://shop-backend.internal:99999999999999999999/x", "https://shop-backend.internal:99999999999999999999/x"},
	{"unclosed bracket", "https://[shop-backend.internal:8443/x", "https://[shop-backend.internal:8443/x"},
	{"empty", "", ""},
	{"only slashes", "//", "//"},
	{"only scheme", "https:", "https:"},
	{"mailto", "mailto:a@shop-backend.internal", "mailto:a@shop-backend.internal"},
	{"over 8 KiB", "https://shop-backend.internal:8443/" + strings.Repeat("a", 8<<10), "https://shop-backend.internal:8443/" + strings.Repeat("a", 8<<10)},
}

func TestRewriteLocationHeader(t *testing.T) {
	checkHeader(t, testOrigins(t, "shop.example.com", true), "Location", urlTests)
}

func TestRewriteContentLocationHeader(t *testing.T) {
	checkHeader(t, testOrigins(t, "shop.example.com", true), "Content-Location", urlTests)
}

func TestRewriteLocationHeaderOrigins(t *testing.T) {
	tests := []struct {
		upstream, host string
		overTLS        bool
		in, want       string
	}{
		{"https://h:443", "p", true, "https://h/x", "https://p/x"},
		{"https://h", "p", true, "https://h:443/x", "https://p/x"},
		{"http://h", "p:8080", false, "http://h:80/x", "http://p:8080/x"},
		{"http://h:80", "p:80", false, "http://h/x", "http://p/x"},
		{"http://h:3000", "p:8080", false, "http://h:3000/x", "http://p:8080/x"},
		{"http://h:3000", "p:8080", false, "//h:3000/x", "//p:8080/x"},
		{"http://h:3000", "p:8080", false, "http://h:3001/x", "http://h:3001/x"},
		{"https://h:8443", "p", false, "https://h:8443/x", "http://p/x"},                     // https upstream, http visitor
		{"http://h:3000", "p", true, "http://h:3000/x", "https://p/x"},                       // http upstream, https visitor
		{"http://h:3000", "p", true, "//h:3000/x", "//p/x"},                                  // resolved against https://p
		{"http://[::1]:3000", "p", true, "http://[::1]:3000/x", "https://p/x"},               // IPv6 upstream
		{"http://[::1]:3000", "p", true, "http://[0:0::1]:3000/x", "http://[0:0::1]:3000/x"}, // not normalised
		{"http://h:3000", "[::1]:8080", false, "http://h:3000/x", "http://[::1]:8080/x"},
		{"http://h:3000", "h:3000", false, "http://H:3000/x", "http://H:3000/x"}, // public origin is the upstream's
		{"http://h:3000", "h:3000", true, "http://H:3000/x", "https://h:3000/x"}, // same host and port, https
		{"https://h", "", false, "https://h/x", "https://h/x"},                   // no public host
		{"http://h/app", "p", true, "http://h/app/x", "https://p/app/x"},         // the upstream's path is not mapped
	}
	for _, tt := range tests {
		up, err := url.Parse(tt.upstream)
		if err != nil {
			t.Fatal(err)
		}
		h := http.Header{"Location": {tt.in}}
		newOrigins(up, scheme(tt.overTLS), tt.host).rewriteResponseHeaders(h)
		if got := h.Get("Location"); got != tt.want {
			t.Errorf("upstream %s, Host %q, TLS %v: Location %q became %q, want %q", tt.upstream, tt.host, tt.overTLS, tt.in, got, tt.want)
		}
	}
}

func TestRewriteRefreshHeader(t *testing.T) {
	const up, pub = "https://shop-backend.internal:8443", "https://shop.example.com"
	checkHeader(t, testOrigins(t, "shop.example.com", true), "Refresh", []headerTest{
		{"url=", "5; url=" + up + "/x", "5; url=" + pub + "/x"},
		{"URL=", "5;URL=" + up + "/x", "5;URL=" + pub + "/x"},
		{"no spaces", "0;url=" + up + "/x?a", "0;url=" + pub + "/x?a"},
		{"spaces around =", "0 ;  Url =  " + up + "/x  ", "0 ;  Url =  " + pub + "/x  "},
		{"single quotes", "0; url='" + up + "/x' trailing", "0; url='" + pub + "/x' trailing"},
		{"double quotes", `0; url="` + up + `/x"`, `0; url="` + pub + `/x"`},
		{"unclosed quote", `0; url="` + up + `/x`, `0; url="` + pub + `/x`},
		{"bare URL", "0;" + up + "/x", "0;" + pub + "/x"},
		{"bare URL with space", "0; " + up + "/x", "0; " + pub + "/x"},
		{"bare quoted URL", "0; '" + up + "/x'", "0; '" + pub + "/x'"},
		{"comma", "3," + up + "/x", "3," + pub + "/x"},
		{"space only", "3 " + up + "/x", "3 " + pub + "/x"},
		{"fractional delay", "1.5; url=" + up, "1.5; url=" + pub},
		{"dot delay", ".5; url=" + up, ".5; url=" + pub},
		{"leading space", "  2; url=" + up + "/", "  2; url=" + pub + "/"},
		{"protocol-relative", "0; url=//shop-backend.internal:8443/x", "0; url=//shop.example.com/x"},

		{"delay only", "5", "5"},
		{"delay and separator", "5; ", "5; "},
		{"relative", "5; url=/x", "5; url=/x"},
		{"other origin", "5; url=https://cdn.example.net/x", "5; url=https://cdn.example.net/x"},
		{"url without =", "5; url" + up, "5; url" + up},
		{"u but not url", "5; u" + up, "5; u" + up},
		{"quoted after url without =", "5; url '" + up + "'", "5; url '" + up + "'"},
		{"no delay", "url=" + up, "url=" + up},
		{"junk after delay", "5x; url=" + up, "5x; url=" + up},
		{"empty", "", ""},
		{"url= at end", "5; url=", "5; url="},
		{"url = quote at end", "5; url = '", "5; url = '"},
	})
}

func TestRewriteLinkHeader(t *testing.T) {
	const up, pub = "https://shop-backend.internal:8443", "https://shop.example.com"
	checkHeader(t, testOrigins(t, "shop.example.com", true), "Link", []headerTest{
		{"one", "<" + up + "/style.css>; rel=preload; as=style", "<" + pub + "/style.css>; rel=preload; as=style"},
		{"several", "<" + up + "/a>; rel=preload, </b>; rel=next, <" + up + "/c>; rel=prev",
			"<" + pub + "/a>; rel=preload, </b>; rel=next, <" + pub + "/c>; rel=prev"},
		{"comma in URI", "<" + up + "/a,b>; rel=x, <" + up + "/c>", "<" + pub + "/a,b>; rel=x, <" + pub + "/c>"},
		{"comma and <> in quoted param", `</a>; title="x, <` + up + `/b>", <` + up + `/c>; title="q\"<, ` + up + `"`,
			`</a>; title="x, <` + up + `/b>", <` + pub + `/c>; title="q\"<, ` + up + `"`},
		{"anchor param kept", `<` + up + `/a>; rel=alternate; anchor="` + up + `/b"`, `<` + pub + `/a>; rel=alternate; anchor="` + up + `/b"`},
		{"spaces", "  < " + up + "/a >  ;rel=x ,\t<" + up + ">", "  < " + pub + "/a >  ;rel=x ,\t<" + pub + ">"},
		{"protocol-relative", "<//shop-backend.internal:8443/a>; rel=preconnect", "<//shop.example.com/a>; rel=preconnect"},
		{"case", "<HTTPS://SHOP-BACKEND.INTERNAL:8443/A>; rel=x", "<" + pub + "/A>; rel=x"},

		{"relative", "</a>; rel=next", "</a>; rel=next"},
		{"other origin", "<https://cdn.example.net/a>; rel=preconnect", "<https://cdn.example.net/a>; rel=preconnect"},
		{"not starting with <", "x <" + up + "/a>, <" + up + "/b>", "x <" + up + "/a>, <" + pub + "/b>"},
		{"< in unquoted param", "</a>; rel=<" + up + "/b>", "</a>; rel=<" + up + "/b>"},
		{"unterminated <", "<" + up + "/a>, <" + up + "/b", "<" + pub + "/a>, <" + up + "/b"},
		{"unterminated quote", `</a>; title="x, <` + up + `/b>`, `</a>; title="x, <` + up + `/b>`},
		{"trailing backslash in quote", `</a>; title="\`, `</a>; title="\`},
		{"empty", "", ""},
		{"only commas", ",,,", ",,,"},
		{"empty <>", "<>; rel=x", "<>; rel=x"},
	})
}

func TestRewriteLinkHeaderSeveralValues(t *testing.T) {
	o := testOrigins(t, "shop.example.com", true)
	h := http.Header{"Link": {
		"<https://shop-backend.internal:8443/a>; rel=preload",
		"</b>; rel=next",
		"<https://shop-backend.internal:8443/c>; rel=prev",
	}}
	o.rewriteResponseHeaders(h)
	want := []string{
		"<https://shop.example.com/a>; rel=preload",
		"</b>; rel=next",
		"<https://shop.example.com/c>; rel=prev",
	}
	if !slices.Equal(h["Link"], want) {
		t.Errorf("Link %q, want %q", h["Link"], want)
	}
}

func TestRewriteSetCookieHeaderDomain(t *testing.T) {
	// The visitor is on https, so Secure and SameSite stay.
	checkHeader(t, testOrigins(t, "shop.example.com", true), "Set-Cookie", []headerTest{
		{"exact", "id=1; Domain=shop-backend.internal; Path=/", "id=1; Path=/"},
		{"leading dot", "id=1; Path=/; Domain=.shop-backend.internal", "id=1; Path=/"},
		{"case", "id=1; domain=Shop-Backend.INTERNAL; Secure", "id=1; Secure"},
		{"parent domain", "id=1; Domain=internal; HttpOnly", "id=1; HttpOnly"},
		{"parent domain with dot", "id=1;Domain=.Internal;HttpOnly", "id=1;HttpOnly"},
		{"spaces", "id=1 ;  DOMAIN = shop-backend.internal ; Path=/", "id=1 ; Path=/"},
		{"last Domain counts", "id=1; Domain=cdn.example.net; Domain=shop-backend.internal; Path=/", "id=1; Path=/"},
		{"empty Domain ignored", "id=1; Domain=shop-backend.internal; Domain=", "id=1"},
		{"other attributes kept", "id=1; Domain=shop-backend.internal; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Max-Age=0; Secure; HttpOnly; SameSite=None; Partitioned; Priority=High; Foo=bar; Flag",
			"id=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT; Max-Age=0; Secure; HttpOnly; SameSite=None; Partitioned; Priority=High; Foo=bar; Flag"},
		{"__Host- stays host-only", "__Host-id=1; Secure; Path=/", "__Host-id=1; Secure; Path=/"},
		{"__Secure- loses upstream Domain", "__Secure-id=1; Secure; Domain=shop-backend.internal", "__Secure-id=1; Secure"},

		{"no Domain", "id=1; Path=/; Secure", "id=1; Path=/; Secure"},
		{"unrelated domain", "id=1; Domain=example.net", "id=1; Domain=example.net"},
		{"public host's domain", "id=1; Domain=example.com", "id=1; Domain=example.com"},
		{"subdomain of upstream", "id=1; Domain=a.shop-backend.internal", "id=1; Domain=a.shop-backend.internal"},
		{"suffix, not a parent", "id=1; Domain=backend.internal", "id=1; Domain=backend.internal"},
		{"last Domain unrelated", "id=1; Domain=shop-backend.internal; Domain=example.net", "id=1; Domain=shop-backend.internal; Domain=example.net"},
		{"empty Domain only", "id=1; Domain=", "id=1; Domain="},
		{"dot only", "id=1; Domain=.", "id=1; Domain=."},
		{"Domain as value", "Domain=shop-backend.internal", "Domain=shop-backend.internal"},
		{"Path kept", "id=1; Path=/account", "id=1; Path=/account"},
		{"no attributes", "id=1", "id=1"},
		{"empty", "", ""},
		{"malformed", ";;=;Domain;=", ";;=;Domain;="},
	})
}

func TestRewriteSetCookieHeaderSameHost(t *testing.T) {
	// The visitor reaches cobrowse on the upstream's host name (another
	// port): the cookie's Domain already matches it.
	up, err := url.Parse("http://localhost:3000")
	if err != nil {
		t.Fatal(err)
	}
	checkHeader(t, newOrigins(up, "https", "LOCALHOST:8080"), "Set-Cookie", []headerTest{
		{"exact", "id=1; Domain=localhost; Path=/", "id=1; Domain=localhost; Path=/"},
		{"dot", "id=1; Domain=.localhost", "id=1; Domain=.localhost"},
	})
}

func TestRewriteSetCookieHeaderNoPublicHost(t *testing.T) {
	checkHeader(t, testOrigins(t, "", true), "Set-Cookie", []headerTest{
		{"exact", "id=1; Domain=shop-backend.internal; Secure", "id=1; Domain=shop-backend.internal; Secure"},
	})
}

func TestRewriteSetCookieHeaderHTTP(t *testing.T) {
	// Development: the visitor is on http://localhost:8080.
	checkHeader(t, testOrigins(t, "localhost:8080", false), "Set-Cookie", []headerTest{
		{"Secure dropped", "id=1; Path=/; Secure; HttpOnly", "id=1; Path=/; HttpOnly"},
		{"Secure any case, any value", "id=1; SECURE=1;secure ; HttpOnly", "id=1; HttpOnly"},
		{"SameSite=None to Lax", "id=1; Secure; SameSite=None", "id=1; SameSite=Lax"},
		{"SameSite=none, spaces", "id=1; samesite = none ; Path=/", "id=1; samesite = Lax ; Path=/"},
		{"SameSite=Strict kept", "id=1; SameSite=Strict", "id=1; SameSite=Strict"},
		{"SameSite=Lax kept", "id=1; SameSite=Lax; Secure", "id=1; SameSite=Lax"},
		{"SameSite empty kept", "id=1; SameSite=", "id=1; SameSite="},
		{"Domain and Secure", "id=1; Domain=.shop-backend.internal; Secure; SameSite=None; Partitioned; Priority=Low; X-Unknown=a=b",
			"id=1; SameSite=Lax; Priority=Low; X-Unknown=a=b"},
		{"Secure in the value kept", "id=Secure; Path=/", "id=Secure; Path=/"},
		{"nameless cookie", "Secure; Secure", "Secure"},
		{"insecure cookie", "id=1; Path=/; HttpOnly", "id=1; Path=/; HttpOnly"},
		{"quoted value", `id="a b"; Secure`, `id="a b"`},
		{"SecureX kept", "id=1; SecureX; NotSecure", "id=1; SecureX; NotSecure"},
	})
}

func TestRewriteSetCookieHeaderPrefixes(t *testing.T) {
	insecure := []string{
		"__Secure-id=1; Secure; Domain=shop-backend.internal; SameSite=None",
		"__Host-id=2; Secure; Path=/",
		"__host-ID=3; Secure; Path=/",
		" __SECURE-x =4; Secure",
	}
	others := []string{
		"id=5; Secure",
		"x__Secure-id=6; Secure",
		"__Secure-id; Secure",  // nameless: browsers refuse it everywhere
		"=__Host-id=7; Path=/", // nameless too
	}
	tests := []struct {
		name        string
		host        string
		overTLS     bool
		want        []string
		wantRefused []string
	}{
		{"http", "localhost:8080", false,
			append(slices.Clone(insecure), "id=5", "x__Secure-id=6", "__Secure-id", "=__Host-id=7; Path=/"),
			[]string{"__Secure-id", "__Host-id", "__host-ID", "__SECURE-x"}},
		{"https", "shop.example.com", true,
			append([]string{"__Secure-id=1; Secure; SameSite=None"}, append(slices.Clone(insecure[1:]), others...)...),
			nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Set-Cookie": append(slices.Clone(insecure), others...)}
			refused := testOrigins(t, tt.host, tt.overTLS).rewriteResponseHeaders(h)
			if !slices.Equal(h["Set-Cookie"], tt.want) {
				t.Errorf("Set-Cookie\n got %q\nwant %q", h["Set-Cookie"], tt.want)
			}
			if !slices.Equal(refused, tt.wantRefused) {
				t.Errorf("refused %q, want %q", refused, tt.wantRefused)
			}
		})
	}
}

func TestRewriteSetCookieHeaderSeveral(t *testing.T) {
	h := http.Header{
		"Set-Cookie": {
			"a=1; Domain=shop-backend.internal; Secure",
			"b=2; Path=/",
			"a=3; Domain=example.net",
			"c=4; Max-Age=0; Secure",
			"b=2; Path=/",
			"long=" + strings.Repeat("x", 8<<10) + "; Domain=shop-backend.internal; Secure",
		},
		"X-Other": {"https://shop-backend.internal:8443/"},
	}
	want := []string{
		"a=1",
		"b=2; Path=/",
		"a=3; Domain=example.net",
		"c=4; Max-Age=0",
		"b=2; Path=/",
		h["Set-Cookie"][5], // over 8 KiB: unchanged
	}
	testOrigins(t, "localhost:8080", false).rewriteResponseHeaders(h)
	if !slices.Equal(h["Set-Cookie"], want) {
		t.Errorf("Set-Cookie\n got %q\nwant %q", h["Set-Cookie"], want)
	}
	if got := h.Get("X-Other"); got != "https://shop-backend.internal:8443/" {
		t.Errorf("X-Other was rewritten to %q", got)
	}
}

// FuzzRewriteResponseHeaders checks that rewriteResponseHeaders does not
// panic, is idempotent, keeps the number and order of values, and leaves
// alone URL headers that do not name the upstream's host and cookies that
// have nothing it rewrites.
func FuzzRewriteResponseHeaders(f *testing.F) {
	const up = "https://shop-backend.internal:8443"
	f.Add(up+"/x", "5; url="+up+"/x", "<"+up+"/a>; rel=preload, </b>", "id=1; Domain=.shop-backend.internal; Secure; SameSite=None; Partitioned", false)
	f.Add("//shop-backend.internal:8443/x", "0;URL='"+up+"'", `</a>; title="<`+up+`>, x", <`+up+`>`, "__Host-id=1; Secure; Path=/", true)
	f.Add(`HTTPS:\\SHOP-BACKEND.internal:08443\x`, ".5, "+up, "<//shop-backend.internal:8443>", "id=1; Domain=internal; Domain=; samesite = none", false)
	f.Add("https://user@shop-backend.internal:8443?q", "1 url '"+up+"'", "<"+up, "__Secure-id; Secure", true)
	f.Fuzz(func(t *testing.T, location, refresh, link, cookie string, overTLS bool) {
		host := "localhost:8080"
		if overTLS {
			host = "shop.example.com"
		}
		o := testOrigins(t, host, overTLS)
		in := http.Header{
			"Location":         {location},
			"Content-Location": {location},
			"Refresh":          {refresh},
			"Link":             {link, location},
			"Set-Cookie":       {cookie, location, refresh},
		}
		once := in.Clone()
		o.rewriteResponseHeaders(once)
		twice := once.Clone()
		refused := o.rewriteResponseHeaders(twice)
		for k, vs := range once {
			if len(vs) != len(in[k]) {
				t.Fatalf("%s: %d values became %d", k, len(in[k]), len(vs))
			}
			if !slices.Equal(vs, twice[k]) {
				t.Errorf("%s: not idempotent: %q\nonce  %q\ntwice %q", k, in[k], vs, twice[k])
			}
			for i, v := range vs {
				if v != in[k][i] && !mayRewrite(k, in[k][i], overTLS) {
					t.Errorf("%s: %q became %q but names nothing to rewrite", k, in[k][i], v)
				}
			}
		}
		for i, c := range once["Set-Cookie"] {
			got, _, _ := strings.Cut(c, ";")
			want, _, _ := strings.Cut(in["Set-Cookie"][i], ";")
			if got != want {
				t.Errorf("Set-Cookie: name and value %q became %q", want, got)
			}
		}
		for _, name := range refused {
			if overTLS || !strings.Contains(strings.Join(in["Set-Cookie"], "\n"), name) {
				t.Errorf("refused %q (TLS %v) from %q", name, overTLS, in["Set-Cookie"])
			}
		}
	})
}

// mayRewrite reports whether rewriteResponseHeaders may change the value v of
// header key: a URL header only if it names the upstream's host, a cookie
// only if it has a Domain attribute, or, over http, Secure or SameSite.
func mayRewrite(key, v string, overTLS bool) bool {
	v = strings.ToLower(v)
	if key != "Set-Cookie" {
		return strings.Contains(v, "shop-backend.internal")
	}
	return strings.Contains(v, "domain") ||
		!overTLS && (strings.Contains(v, "secure") || strings.Contains(v, "samesite"))
}

func TestRewriteRequestHeaders(t *testing.T) {
	o := testOrigins(t, "shop.example.com", false) // upstream: testUpstream
	tests := []struct{ header, in, want string }{
		{"Origin", "http://shop.example.com", "https://shop-backend.internal:8443"},
		{"Origin", "http://SHOP.example.com:80", "https://shop-backend.internal:8443"},
		{"Origin", "https://shop.example.com", "https://shop.example.com"}, // another origin
		{"Origin", "http://evil.example", "http://evil.example"},
		{"Origin", "null", "null"},
		{"Referer", "http://shop.example.com/cart?x=1", "https://shop-backend.internal:8443/cart?x=1"},
		{"Referer", "http://other.example/", "http://other.example/"},
	}
	for _, tc := range tests {
		h := http.Header{tc.header: {tc.in}}
		o.rewriteRequestHeaders(h)
		if got := h.Get(tc.header); got != tc.want {
			t.Errorf("%s %q → %q, want %q", tc.header, tc.in, got, tc.want)
		}
	}
}

// The upstream never gets the cookies named in Config.OwnCookies (cobrowse's
// visitor cookie); every other cookie reaches it as the visitor sent it.
func TestProxyKeepsOwnCookiesFromUpstream(t *testing.T) {
	const own = "__cobrowse_sid"
	tests := []struct {
		name string
		sent []string // the visitor's Cookie headers
		want []string // what the upstream gets
	}{
		{"only the own cookie", []string{own + "=abc.sig"}, nil},
		{"among the site's", []string{"cart=42; " + own + "=abc.sig; theme=dark"}, []string{"cart=42; theme=dark"}},
		{"first and last", []string{own + "=a; cart=42; " + own + "=b"}, []string{"cart=42"}},
		{"written loosely", []string{"cart=42 ;  " + own + " =a;\ttheme=dark"}, []string{"cart=42; theme=dark"}},
		{"a name that starts with it", []string{own + "2=x; cart=42"}, []string{own + "2=x; cart=42"}},
		{"in another cookie's value", []string{"ref=" + own + "; cart=42"}, []string{"ref=" + own + "; cart=42"}},
		{"no own cookie, kept byte for byte", []string{"cart=42;theme=dark"}, []string{"cart=42;theme=dark"}},
		{"in one of two headers", []string{"cart=42", own + "=abc.sig"}, []string{"cart=42"}},
		{"no cookie", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan []string, 1)
			proxyURL, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- r.Header["Cookie"]
			}), Config{OwnCookies: []string{own}})
			req, _ := http.NewRequest(http.MethodGet, proxyURL+"/", nil)
			req.Header["Cookie"] = tc.sent
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if cookies := <-got; !slices.Equal(cookies, tc.want) {
				t.Errorf("the upstream got Cookie %q, want %q", cookies, tc.want)
			}
		})
	}
}

// FuzzWithoutCookies checks withoutCookies against a plain reading of a
// Cookie header: the pairs, trimmed, that are not empty and not named sid,
// in order; or the header as it came if "sid" is nowhere in it.
func FuzzWithoutCookies(f *testing.F) {
	for _, v := range []string{"", "sid=1", "a=1; sid=2; b=3", " sid =x;;b", "sidx=1;sid", "a=sid", "\tsid\t=\t1\t;c"} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		got := withoutCookies(v, []string{"sid"})
		want := v
		if strings.Contains(v, "sid") {
			var kept []string
			for _, pair := range strings.Split(v, ";") {
				pair = strings.Trim(pair, " \t")
				if name, _, _ := strings.Cut(pair, "="); pair != "" && strings.Trim(name, " \t") != "sid" {
					kept = append(kept, pair)
				}
			}
			want = strings.Join(kept, "; ")
		}
		if got != want {
			t.Fatalf("withoutCookies(%q) = %q, want %q", v, got, want)
		}
	})
}
