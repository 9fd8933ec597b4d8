package policies

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/andybalholm/cascadia"
	"golang.org/x/net/html"
)

func TestClientJSON(t *testing.T) {
	p := mustParse(t, `version: 1
rules:
  - name: account
    pages: ["/account/**"]
    mask: [".secret", "#holder"]
    remove: ["#ssn-block", "iframe[src*='<x>']"]
    no_control: ["button.pay"]
  - name: all-inputs
    pages: ["/account/edit"]
    inputs: all
  - name: admin
    pages: ["/admin/**"]
    block_page: true
`)
	sensitive := `input[type="password" i],input[type="email" i],input[type="tel" i],input[type="hidden" i],` +
		`input[autocomplete*="cc-" i],select[autocomplete*="cc-" i],input[autocomplete*="one-time-code" i],input[autocomplete*="password" i]`
	tests := []struct {
		path string
		want string
	}{
		{"/", `{"maskInputSelector":` + jsonString(sensitive) + `,"maskAllInputs":false,"maskInputOptions":{"email":true,"password":true,"tel":true}}`},
		{"/account/cards", `{"maskTextSelector":".secret,#holder",` +
			`"maskInputSelector":` + jsonString(sensitive+",.secret,.secret *,#holder,#holder *") + `,` +
			`"blockSelector":"#ssn-block,iframe[src*='\u003cx\u003e']","maskAllInputs":false,` +
			`"maskInputOptions":{"email":true,"password":true,"tel":true},"noControlSelector":"button.pay"}`},
		{"/account/edit", `{"maskTextSelector":".secret,#holder",` +
			`"maskInputSelector":` + jsonString(sensitive+",.secret,.secret *,#holder,#holder *") + `,` +
			`"blockSelector":"#ssn-block,iframe[src*='\u003cx\u003e']","maskAllInputs":true,` +
			`"maskInputOptions":{"email":true,"password":true,"tel":true},"noControlSelector":"button.pay"}`},
		{"/admin", `{"maskInputSelector":` + jsonString(sensitive) + `,"maskAllInputs":false,"maskInputOptions":{"email":true,"password":true,"tel":true},"blockPage":true}`},
	}
	for _, tc := range tests {
		b, err := json.Marshal(p.ForPage("shop.example.com", tc.path).Client())
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.path, b, tc.want)
		}
	}
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// The joined selectors must parse as one selector list, as a browser's
// element.matches would take them.
func TestClientSelectorsParse(t *testing.T) {
	p := mustParse(t, "version: 1\nrules:\n  - name: r\n    mask: ['a:not(.x, .y)', 'div > p', '[data-a=\"1,2\"]']\n")
	cc := p.ForPage("x", "/").Client()
	for _, sel := range []string{cc.MaskTextSelector, cc.MaskInputSelector} {
		g, err := cascadia.ParseGroup(sel)
		if err != nil {
			t.Errorf("%q: %v", sel, err)
		}
		if len(g) < 3 {
			t.Errorf("%q: %d selectors", sel, len(g))
		}
	}
}

func TestMasksInput(t *testing.T) {
	doc, err := html.Parse(strings.NewReader(`<form>
<input id=text name=q>
<input id=pw type=PassWord>
<input id=email type=email>
<input id=hidden type=hidden value=csrf>
<input id=cc autocomplete="billing cc-number">
<select id=ccexp autocomplete=cc-exp-month><option>1</select>
<input id=otp autocomplete=one-time-code>
<input id=newpw autocomplete=new-password>
<textarea id=area></textarea>
<select id=sel><option id=opt>a<optgroup id=group><option id=groupopt>b</optgroup></select>
<select id=ccexp2 autocomplete=cc-exp-year><optgroup><option id=ccopt>2030</optgroup></select>
<datalist><option id=listopt>x</datalist>
<input id=submit type=submit value=Pay>
<input id=check type=checkbox>
<div class=secret><input id=inner><input id=innersubmit type=submit value=Go></div>
<div id=notfield>text</div>
</form>`))
	if err != nil {
		t.Fatal(err)
	}
	byID := func(id string) *html.Node {
		n := cascadia.MustCompile("#" + id).MatchFirst(doc)
		if n == nil {
			t.Fatalf("no #%s", id)
		}
		return n
	}
	p := mustParse(t, `version: 1
rules:
  - name: secret
    pages: ["/secret"]
    mask: [".secret"]
  - name: all
    pages: ["/all"]
    inputs: all
`)
	tests := []struct {
		id               string
		plain, mask, all bool // on a page without rules, with the mask rule, with inputs: all
	}{
		{"text", false, false, true},
		{"pw", true, true, true},
		{"email", true, true, true},
		{"hidden", true, true, true},
		{"cc", true, true, true},
		{"ccexp", true, true, true},
		{"otp", true, true, true},
		{"newpw", true, true, true},
		{"area", false, false, true},
		{"sel", false, false, true},
		{"opt", false, false, true},
		{"group", false, false, true},
		{"groupopt", false, false, true},
		{"ccopt", true, true, true},
		{"listopt", false, false, false},
		{"submit", false, false, false},
		{"check", false, false, false},
		{"inner", false, true, true},
		{"innersubmit", false, true, false},
		{"notfield", false, false, false},
	}
	plain, mask, all := p.ForPage("x", "/"), p.ForPage("x", "/secret"), p.ForPage("x", "/all")
	for _, tc := range tests {
		n := byID(tc.id)
		if got := plain.MasksInput(n); got != tc.plain {
			t.Errorf("#%s on a plain page: %v", tc.id, got)
		}
		if got := mask.MasksInput(n); got != tc.mask {
			t.Errorf("#%s under a mask rule: %v", tc.id, got)
		}
		if got := all.MasksInput(n); got != tc.all {
			t.Errorf("#%s with inputs: all: %v", tc.id, got)
		}
	}
	if plain.MasksInput(&html.Node{Type: html.TextNode, Data: "x"}) {
		t.Error("a text node is a field")
	}
}

func TestInputMaskingString(t *testing.T) {
	if MaskSensitiveInputs.String() != "sensitive" || MaskAllInputs.String() != "all" {
		t.Error(MaskSensitiveInputs.String(), MaskAllInputs.String())
	}
}

func TestClientHandler(t *testing.T) {
	p, err := Parse("test.yaml", []byte("version: 1\nrules:\n  - name: a\n    pages: [\"/account/**\"]\n    mask: [\".secret\"]\n    remove: [\"#ssn\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := ClientHandler(func() *Policy { return p })
	get := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		return rec
	}
	rec := get(ClientPath + "?url=" + url.QueryEscape("https://shop.example.com/account/x?y=1"))
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("status %d, headers %v", rec.Code, rec.Header())
	}
	var cfg ClientConfig
	if err := json.Unmarshal(rec.Body.Bytes(), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.MaskTextSelector != ".secret" || cfg.BlockSelector != "#ssn" {
		t.Errorf("config %+v", cfg)
	}
	if rec := get(ClientPath + "?url=" + url.QueryEscape("https://shop.example.com/")); !strings.Contains(rec.Body.String(), `"maskAllInputs":false`) || strings.Contains(rec.Body.String(), ".secret") {
		t.Errorf("another page: %s", rec.Body.String())
	}
	for _, bad := range []string{ClientPath, ClientPath + "?url=/relative"} {
		if rec := get(bad); rec.Code != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400", bad, rec.Code)
		}
	}
}
