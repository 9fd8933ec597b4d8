package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"time"
)

// asset is one embedded static file, ready to serve.
type asset struct {
	data        []byte
	contentType string
	etag        string // strong, derived from the content
}

// mustLoadAssets reads every file under site/ except the templates and keys
// it by the URL path it is served at: site/css/shop.css → /css/shop.css. It
// panics on a file type contentType does not know, so that a new asset cannot
// silently be served with a guessed type.
func mustLoadAssets(fsys fs.FS) map[string]asset {
	assets := make(map[string]asset)
	err := fs.WalkDir(fsys, "site", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name == "site/templates" {
				return fs.SkipDir
			}
			return nil
		}
		ctype, ok := contentType(path.Ext(name))
		if !ok {
			return fmt.Errorf("%s: no content type for this extension; add one to contentType", name)
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		assets[name[len("site"):]] = asset{data: data, contentType: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		panic("demo: loading embedded assets: " + err.Error())
	}
	return assets
}

// contentType returns the Content-Type for a file extension. It does not
// consult the system's MIME tables, so responses are the same on every host.
func contentType(ext string) (string, bool) {
	switch ext {
	case ".css":
		return "text/css; charset=utf-8", true
	case ".js":
		return "text/javascript; charset=utf-8", true
	case ".svg":
		return "image/svg+xml", true
	case ".woff2":
		return "font/woff2", true
	case ".txt":
		return "text/plain; charset=utf-8", true
	}
	return "", false
}

// serveAsset serves a static file with its content type and an ETag. Assets
// have unversioned URLs, so browsers must revalidate them (no-cache), which
// costs a 304.
func (s *Shop) serveAsset(w http.ResponseWriter, r *http.Request) {
	a, ok := s.assets[r.URL.Path]
	if !ok {
		s.serveNotFound(w, r)
		return
	}
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.data))
}
