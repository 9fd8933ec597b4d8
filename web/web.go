// Package web holds all browser-side code of cobrowse and serves it as
// static bytes: the visitor script injected into fronted pages, the agent
// console (dashboard, session view, login), and the replay page that the
// headless renderer screencasts.
//
// rrweb comes from npm at the version pinned in package.json; `npm ci && npm
// run build` (run by `make`) copies its bundles into dist/, which is embedded.
// A binary built without that step fails at start-up with an error that says
// so (see Check).
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"strings"
	"time"

	"github.com/cobrowse/cobrowse/internal/contentcoding"
)

//go:embed agent visitor replay dist
var files embed.FS

// vendorFiles are the rrweb bundles that `npm run build` puts in dist/.
var vendorFiles = []string{"rrweb-record.min.js", "rrweb-replay.min.js", "rrweb-replay.css"}

// Check reports whether the rrweb bundles were embedded, with an error that
// tells the operator how to build them.
func Check() error {
	for _, name := range vendorFiles {
		if _, err := fs.Stat(files, "dist/"+name); err != nil {
			return fmt.Errorf("this binary was built without rrweb (web/dist/%s is missing): run `make build`, or `npm ci && npm run build` in web/ before `go build`", name)
		}
	}
	return nil
}

// Agent returns the agent console's static files: the pages and scripts at
// the root, the rrweb replayer under vendor/.
func Agent() fs.FS {
	return mounts{
		{"vendor/", sub("dist")},
		{"", sub("agent")},
	}
}

// Replay returns the replay page of the headless renderer: replay.html and
// its scripts at the root, with the agent console's player.js (DOM mode and
// Rendered mode replay the same way) and the rrweb replayer under vendor/.
func Replay() fs.FS {
	return mounts{
		{"vendor/", sub("dist")},
		{"player.js", fileFS{sub("agent"), "player.js"}},
		{"", sub("replay")},
	}
}

func sub(dir string) fs.FS {
	f, _ := fs.Sub(files, dir) // cannot fail: dir is a valid embedded path
	return f
}

// mounts serves each name from the first mount whose prefix it has, with the
// prefix cut off; a prefix without a trailing slash matches that name only.
type mounts []struct {
	prefix string
	fs     fs.FS
}

func (m mounts) Open(name string) (fs.File, error) {
	for _, mount := range m {
		rest, ok := strings.CutPrefix(name, mount.prefix)
		wholeName := mount.prefix != "" && !strings.HasSuffix(mount.prefix, "/")
		if !ok || (wholeName && rest != "") {
			continue
		}
		if wholeName {
			rest = "."
		}
		return mount.fs.Open(rest)
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// fileFS is one file of an fs.FS, opened as "." by mounts.
type fileFS struct {
	fs   fs.FS
	name string
}

func (f fileFS) Open(name string) (fs.File, error) {
	if name != "." {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return f.fs.Open(f.name)
}

// VisitorScript returns the script served at /__cobrowse/visitor.js: the
// rrweb record bundle, visitor/ui.js, visitor/control.js and
// visitor/visitor.js in one function
// scope, so that neither rrweb nor our code touches the page's globals
// (rrweb's UMD wrapper would otherwise register itself with a page's AMD
// loader or window).
func VisitorScript() ([]byte, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	record, err := files.ReadFile("dist/rrweb-record.min.js")
	if err != nil {
		return nil, err
	}
	ui, err := files.ReadFile("visitor/ui.js")
	if err != nil {
		return nil, err
	}
	control, err := files.ReadFile("visitor/control.js")
	if err != nil {
		return nil, err
	}
	visitor, err := files.ReadFile("visitor/visitor.js")
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString("/* cobrowse visitor script; includes rrweb (MIT) */\n")
	b.WriteString("(function (define, exports, module) {\n")
	b.Write(record)
	b.WriteString("\n;")
	b.Write(ui)
	b.WriteString("\n;")
	b.Write(control)
	b.WriteString("\n;")
	b.Write(bytes.TrimSpace(visitor))
	b.WriteString("(this.rrwebRecord.record);\n}).call({});\n")
	return b.Bytes(), nil
}

// VisitorScriptHandler serves the visitor script with a strong ETag (so
// every page load revalidates cheaply and a new version is picked up at
// once) and gzip when the client accepts it. The script is built and
// compressed once, here.
func VisitorScriptHandler() (http.Handler, error) {
	script, err := VisitorScript()
	if err != nil {
		return nil, err
	}
	var gz bytes.Buffer
	w, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression) // valid level: cannot fail
	w.Write(script)
	w.Close()
	sum := sha256.Sum256(script)
	version := hex.EncodeToString(sum[:12])
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "no-cache")
		h.Set("Vary", "Accept-Encoding")
		h.Set("X-Content-Type-Options", "nosniff")
		body, etag := script, `"`+version+`"`
		if contentcoding.Accepts(r.Header, "gzip") {
			h.Set("Content-Encoding", "gzip")
			body, etag = gz.Bytes(), `"`+version+`-gz"`
		}
		h.Set("ETag", etag)
		http.ServeContent(rw, r, "", time.Time{}, bytes.NewReader(body))
	}), nil
}
