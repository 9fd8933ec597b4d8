package policies

import (
	"cmp"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/html"
)

// sensitiveInputs select the form fields whose values are masked in every
// mode: passwords, e-mail and phone fields, hidden fields (tokens), card
// fields and one-time codes by their autocomplete tokens. The attribute
// values match without regard to case, as browsers treat them.
var sensitiveInputs = mustSelectors(
	`input[type="password" i]`,
	`input[type="email" i]`,
	`input[type="tel" i]`,
	`input[type="hidden" i]`,
	`input[autocomplete*="cc-" i]`,
	`select[autocomplete*="cc-" i]`,
	`input[autocomplete*="one-time-code" i]`,
	`input[autocomplete*="password" i]`,
)

// sensitiveInputOptions are rrweb's maskInputOptions for the sensitive mode:
// the input types masked by type alone.
var sensitiveInputOptions = []string{"password", "email", "tel"}

func mustSelectors(srcs ...string) []Selector {
	out := make([]Selector, len(srcs))
	for i, src := range srcs {
		sel, err := compileSelector(src)
		if err != nil {
			panic(err)
		}
		out[i] = sel
	}
	return out
}

// ClientConfig is the part of a page's policy sent to the visitor script, as
// JSON: rrweb record options, plus the selectors rrweb has no option for.
// The visitor script masks first; the server enforces the same policy
// whatever the script did.
type ClientConfig struct {
	// MaskTextSelector is rrweb's maskTextSelector: the Mask selectors
	// joined with ","; text in and under matching elements is masked.
	MaskTextSelector string `json:"maskTextSelector,omitempty"`
	// MaskInputSelector selects the form fields whose values are masked
	// beyond MaskInputOptions: the sensitive fields (by type and
	// autocomplete) and the fields in or under Mask selectors. rrweb has no
	// such option: the visitor script applies it in maskInputFn with
	// element.matches.
	MaskInputSelector string `json:"maskInputSelector,omitempty"`
	// BlockSelector is rrweb's blockSelector: the Remove selectors joined;
	// matching elements are recorded as empty boxes of the same size.
	BlockSelector string `json:"blockSelector,omitempty"`
	// MaskAllInputs is rrweb's maskAllInputs.
	MaskAllInputs bool `json:"maskAllInputs"`
	// MaskInputOptions is rrweb's maskInputOptions: the input types masked
	// by type. It always holds password.
	MaskInputOptions map[string]bool `json:"maskInputOptions,omitempty"`
	// NoControl selects the elements an agent may never click or type in.
	NoControl string `json:"noControlSelector,omitempty"`
	// Block says the page is blocked: the script sends nothing of it.
	Block bool `json:"blockPage,omitempty"`
}

// Client returns the visitor script's configuration for the page.
func (pg *Page) Client() ClientConfig {
	cc := ClientConfig{
		MaskTextSelector: joinSelectors(pg.Mask),
		BlockSelector:    joinSelectors(pg.Remove),
		MaskAllInputs:    pg.Inputs == MaskAllInputs,
		NoControl:        joinSelectors(pg.NoControl),
		Block:            pg.Block,
		MaskInputOptions: make(map[string]bool, len(sensitiveInputOptions)),
	}
	for _, t := range sensitiveInputOptions {
		cc.MaskInputOptions[t] = true
	}
	parts := make([]string, 0, len(sensitiveInputs)+2*len(pg.Mask))
	for _, s := range sensitiveInputs {
		parts = append(parts, s.Source)
	}
	for _, s := range pg.Mask {
		parts = append(parts, s.Source, s.Source+" *")
	}
	cc.MaskInputSelector = strings.Join(parts, ",")
	return cc
}

func joinSelectors(ss []Selector) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = s.Source
	}
	return strings.Join(parts, ",")
}

// MasksInput reports whether the value of the form field n must be masked on
// the page: n is in or under an element of Mask, or a sensitive field, or,
// with MaskAllInputs, any input, textarea or select whose value the visitor
// types or picks (not buttons, checkboxes or radio buttons, whose checked
// state is not text). An option or optgroup stands for its select. It is the
// server's counterpart of the ClientConfig's input options; n is an element
// of a DOM mirror with parent links.
func (pg *Page) MasksInput(n *html.Node) bool {
	if n.Type != html.ElementNode {
		return false
	}
	if tag := strings.ToLower(n.Data); tag == "option" || tag == "optgroup" {
		for a := n.Parent; a != nil; a = a.Parent {
			if a.Type == html.ElementNode && strings.EqualFold(a.Data, "select") {
				n = a
				break
			}
		}
	}
	if matchesAny(sensitiveInputs, n) {
		return true
	}
	for a := n; a != nil; a = a.Parent {
		if a.Type == html.ElementNode && matchesAny(pg.Mask, a) {
			return true
		}
	}
	if pg.Inputs != MaskAllInputs {
		return false
	}
	switch strings.ToLower(n.Data) {
	case "textarea", "select":
		return true
	case "input":
		switch strings.ToLower(attr(n, "type")) {
		case "button", "submit", "reset", "image", "checkbox", "radio":
			return false
		}
		return true
	}
	return false
}

func matchesAny(ss []Selector, n *html.Node) bool {
	for _, s := range ss {
		if s.Match.Match(n) {
			return true
		}
	}
	return false
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == key {
			return a.Val
		}
	}
	return ""
}

// ClientPath is where the visitor listener serves the client part of the
// policy (ClientHandler); the visitor script fetches it before it records.
const ClientPath = "/__cobrowse/policy"

// ClientHandler serves, for GET ?url=PAGE-URL, the ClientConfig of that page
// under the current policy, as JSON. The answer is not cached: the policy may
// be reloaded at any time. It tells nothing the page's own markup does not:
// the selectors it masks and removes, and whether fields are all masked.
func ClientHandler(policy func() *Policy) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pageURL := r.URL.Query().Get("url")
		u, err := url.Parse(pageURL)
		if pageURL == "" || err != nil || !u.IsAbs() {
			http.Error(w, "give the page's absolute URL as ?url=", http.StatusBadRequest)
			return
		}
		cfg := policy().ForPage(u.Hostname(), cmp.Or(u.EscapedPath(), "/")).Client()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		json.NewEncoder(w).Encode(cfg)
	})
}
