package web

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	if err := Check(); err != nil {
		t.Fatalf("Check: %v (run `npm ci && npm run build` in web/)", err)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := files.ReadFile(name)
	if err != nil {
		t.Fatalf("reading embedded %s: %v", name, err)
	}
	return b
}

func TestVisitorScript(t *testing.T) {
	script, err := VisitorScript()
	if err != nil {
		t.Fatalf("VisitorScript: %v", err)
	}
	record := mustRead(t, "dist/rrweb-record.min.js")
	visitor := bytes.TrimSpace(mustRead(t, "visitor/visitor.js"))

	tests := []struct {
		name string
		ok   bool
	}{
		{"starts with the licence comment", bytes.HasPrefix(script, []byte("/* cobrowse visitor script; includes rrweb (MIT) */\n"))},
		{"shadows the UMD loaders", bytes.Contains(script, []byte("(function (define, exports, module) {\n"))},
		{"contains the rrweb record bundle", bytes.Contains(script, record)},
		{"contains the visitor code", bytes.Contains(script, visitor)},
		{"passes rrweb's record to the visitor code", bytes.Contains(script, append(append([]byte{}, visitor...), "(this.rrwebRecord.record);"...))},
		{"runs with a private this", bytes.HasSuffix(script, []byte("}).call({});\n"))},
		{"rrweb bundle before the visitor code", bytes.Index(script, record) < bytes.Index(script, visitor)},
		{"no second copy of rrweb", bytes.Count(script, record) == 1},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("visitor script: not true that it %s", tt.name)
		}
	}

	again, err := VisitorScript()
	if err != nil || !bytes.Equal(script, again) {
		t.Errorf("VisitorScript is not deterministic (err %v)", err)
	}
}

// globalsProbe runs a script in a fresh node vm context that looks like a
// page which already uses an AMD loader and CommonJS-style globals, and
// reports what the script did to that page's globals.
const globalsProbe = `
const vm = require('vm');
const fs = require('fs');
const src = fs.readFileSync(process.argv[2], 'utf8');
const amd = process.argv[3] === 'amd';
const defineCalls = [];
const ctx = {};
if (amd) {
  ctx.define = function () { defineCalls.push(String(arguments[0])); };
  ctx.define.amd = {};
  ctx.exports = {};
  ctx.module = { exports: {} };
}
ctx.window = ctx;
ctx.self = ctx;
// The visitor code stops at once when it finds this flag (a second copy on
// the page); the probe uses it so that no DOM is needed.
ctx.__cobrowseVisitor = true;
vm.createContext(ctx);
const before = new Set(Object.getOwnPropertyNames(ctx));
vm.runInContext(src, ctx, { filename: 'script.js' });
console.log(JSON.stringify({
  added: Object.getOwnPropertyNames(ctx).filter(n => !before.has(n)).sort(),
  defineCalls: defineCalls,
  exports: amd ? Object.keys(ctx.exports).concat(Object.keys(ctx.module.exports)) : [],
}));
`

type probeResult struct {
	Added       []string `json:"added"`
	DefineCalls []string `json:"defineCalls"`
	Exports     []string `json:"exports"`
}

// TestVisitorScriptLeaksNoGlobals runs the script in node. The bare rrweb
// bundle is the control: it shows the probe does see a leak.
func TestVisitorScriptLeaksNoGlobals(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	script, err := VisitorScript()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	probe := write("probe.js", []byte(globalsProbe))
	wrapped := write("visitor.js", script)
	bare := write("rrweb-record.min.js", mustRead(t, "dist/rrweb-record.min.js"))

	tests := []struct {
		name   string
		script string
		page   string // "amd": the page has define/exports/module globals
		leaks  bool
	}{
		{"visitor script, plain page", wrapped, "plain", false},
		{"visitor script, AMD page", wrapped, "amd", false},
		{"bare rrweb bundle, plain page (control)", bare, "plain", true},
		{"bare rrweb bundle, AMD page (control)", bare, "amd", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, probe, tt.script, tt.page)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("node: %v\n%s", err, stderr.Bytes())
			}
			var res probeResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("probe output %q: %v", out, err)
			}
			leaked := len(res.Added) > 0 || len(res.DefineCalls) > 0 || len(res.Exports) > 0
			if leaked != tt.leaks {
				t.Errorf("leaked = %v (%+v), want %v", leaked, res, tt.leaks)
			}
		})
	}
}

func TestVisitorScriptHandler(t *testing.T) {
	script, err := VisitorScript()
	if err != nil {
		t.Fatal(err)
	}
	h, err := VisitorScriptHandler()
	if err != nil {
		t.Fatalf("VisitorScriptHandler: %v", err)
	}
	ts := httptest.NewServer(h)
	defer ts.Close()
	// The transport must not ask for gzip on its own nor decode it: the
	// test sets Accept-Encoding and decodes itself.
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	defer client.CloseIdleConnections()

	get := func(t *testing.T, method string, header http.Header) (*http.Response, []byte) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := http.NewRequestWithContext(ctx, method, ts.URL+"/__cobrowse/visitor.js", nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Header = header
		resp, err := client.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}

	tests := []struct {
		acceptEncoding string
		gzip           bool
	}{
		{"", false},
		{"gzip", true},
		{"GZIP", true},
		{"gzip, deflate, br, zstd", true},
		{"br;q=1.0, gzip;q=0.8, *;q=0.1", true},
		{"deflate, br", false},
		{"identity", false},
		{"x-gzip-like", false},
		{"gzip;q=0", false},
		{"gzip; q=0", false},
		{"gzip;q=0.0", false},
		{"gzip;q=0.000", false},
		{"gzip;Q=0", false},
		{"br, gzip;q=0", false},
		{"gzip;q=0.001", true},
		{"gzip;q=1", true},
	}
	etags := map[bool]string{}
	for _, tt := range tests {
		t.Run("Accept-Encoding="+tt.acceptEncoding, func(t *testing.T) {
			header := http.Header{}
			if tt.acceptEncoding != "" {
				header.Set("Accept-Encoding", tt.acceptEncoding)
			}
			resp, body := get(t, http.MethodGet, header)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			for k, want := range map[string]string{
				"Content-Type":           "text/javascript; charset=utf-8",
				"Cache-Control":          "no-cache",
				"Vary":                   "Accept-Encoding",
				"X-Content-Type-Options": "nosniff",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
			etag := resp.Header.Get("ETag")
			if !strings.HasPrefix(etag, `"`) || !strings.HasSuffix(etag, `"`) || len(etag) < 10 {
				t.Errorf("ETag %q is not a strong entity tag", etag)
			}
			if prev, ok := etags[tt.gzip]; ok && prev != etag {
				t.Errorf("ETag %q differs from %q served earlier for the same encoding", etag, prev)
			}
			etags[tt.gzip] = etag

			decoded := body
			if tt.gzip {
				if ce := resp.Header.Get("Content-Encoding"); ce != "gzip" {
					t.Fatalf("Content-Encoding %q, want gzip", ce)
				}
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatalf("body is not gzip: %v", err)
				}
				if decoded, err = io.ReadAll(zr); err != nil {
					t.Fatalf("decoding gzip: %v", err)
				}
				if len(body) >= len(script)/2 {
					t.Errorf("gzip body is %d bytes for a %d-byte script", len(body), len(script))
				}
			} else if ce := resp.Header.Get("Content-Encoding"); ce != "" {
				t.Fatalf("Content-Encoding %q, want none", ce)
			}
			if !bytes.Equal(decoded, script) {
				t.Errorf("body decodes to %d bytes that are not the visitor script (%d bytes)", len(decoded), len(script))
			}
		})
	}
	if etags[true] == "" || etags[false] == "" || etags[true] == etags[false] {
		t.Fatalf("ETags gzip %q and identity %q: want two distinct tags", etags[true], etags[false])
	}

	conditional := []struct {
		name           string
		acceptEncoding string
		ifNoneMatch    string
		status         int
	}{
		{"identity, its own tag", "", etags[false], http.StatusNotModified},
		{"gzip, its own tag", "gzip", etags[true], http.StatusNotModified},
		{"identity, the gzip tag", "", etags[true], http.StatusOK},
		{"gzip, the identity tag", "gzip", etags[false], http.StatusOK},
		{"identity, weak form of its tag", "", "W/" + etags[false], http.StatusNotModified},
		{"one of a list", "gzip", `"other", ` + etags[true], http.StatusNotModified},
		{"any", "gzip", "*", http.StatusNotModified},
		{"stale tag", "gzip", `"0123456789abcdef"`, http.StatusOK},
	}
	for _, tt := range conditional {
		t.Run("If-None-Match/"+tt.name, func(t *testing.T) {
			header := http.Header{"If-None-Match": {tt.ifNoneMatch}}
			if tt.acceptEncoding != "" {
				header.Set("Accept-Encoding", tt.acceptEncoding)
			}
			resp, body := get(t, http.MethodGet, header)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == http.StatusNotModified {
				if len(body) != 0 {
					t.Errorf("304 with a %d-byte body", len(body))
				}
				if resp.Header.Get("ETag") == "" {
					t.Error("304 without its ETag")
				}
			}
		})
	}

	t.Run("HEAD", func(t *testing.T) {
		resp, body := get(t, http.MethodHead, http.Header{})
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(script)) {
			t.Errorf("HEAD: status %d, %d body bytes, Content-Length %d; want 200, none, %d", resp.StatusCode, len(body), resp.ContentLength, len(script))
		}
	})
}

// fsCase is a name to open in a served file system and the file it must be,
// under web/; an empty from means the name must not open.
type fsCase struct{ name, from string }

func TestAgentFS(t *testing.T) {
	checkFS(t, Agent(), []fsCase{
		{"dashboard.html", "agent/dashboard.html"},
		{"session.html", "agent/session.html"},
		{"login.html", "agent/login.html"},
		{"agent.css", "agent/agent.css"},
		{"common.js", "agent/common.js"},
		{"player.js", "agent/player.js"},
		{"vendor/rrweb-replay.min.js", "dist/rrweb-replay.min.js"},
		{"vendor/rrweb-replay.css", "dist/rrweb-replay.css"},
		{"vendor/rrweb-record.min.js", "dist/rrweb-record.min.js"},

		{"nope.html", ""},
		{"vendor/nope.js", ""},
		{"visitor/visitor.js", ""},
		{"dist/rrweb-replay.min.js", ""},
		{"agent/dashboard.html", ""},
		{"vendor/README.md/x", ""},
		{"web.go", ""},
		{"../web.go", ""},
		{"../visitor/visitor.js", ""},
		{"vendor/../dashboard.html", ""},
		{"vendor/../../visitor/visitor.js", ""},
		{"vendor/../visitor/visitor.js", ""},
		{"/dashboard.html", ""},
		{"./dashboard.html", ""},
		{"vendor/", ""},
		{"vendor//rrweb-replay.css", ""},
		{"", ""},
	})
}

func TestReplayFS(t *testing.T) {
	checkFS(t, Replay(), []fsCase{
		{"replay.html", "replay/replay.html"},
		{"replay.js", "replay/replay.js"},
		{"replay.css", "replay/replay.css"},
		{"player.js", "agent/player.js"},
		{"vendor/rrweb-replay.min.js", "dist/rrweb-replay.min.js"},
		{"vendor/rrweb-replay.css", "dist/rrweb-replay.css"},

		{"session.js", ""},
		{"dashboard.html", ""},
		{"player.jsx", ""},
		{"player.js/x", ""},
		{"agent/player.js", ""},
		{"visitor/visitor.js", ""},
		{"../agent/session.js", ""},
		{"", ""},
	})
}

func checkFS(t *testing.T, fsys fs.FS, tests []fsCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := fs.ReadFile(fsys, tt.name)
			if tt.from == "" {
				if err == nil {
					t.Fatalf("opened %q (%d bytes); want an error", tt.name, len(got))
				}
				if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrInvalid) {
					t.Errorf("error %v, want not-exist or invalid", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadFile(%q): %v", tt.name, err)
			}
			if want := mustRead(t, tt.from); !bytes.Equal(got, want) || len(got) == 0 {
				t.Errorf("%q is %d bytes that are not %s (%d bytes)", tt.name, len(got), tt.from, len(want))
			}
		})
	}
}
