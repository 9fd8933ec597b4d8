package demo

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// request sends one request to h and returns the response with its body read.
func request(t *testing.T, h http.Handler, method, target, contentType, body string, cookies ...*http.Cookie) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	res := rec.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

// addToCart posts {"product": product} and returns the decoded cart and the
// demo_cart cookie set by the response, if any.
func addToCart(t *testing.T, h http.Handler, product string, cookies ...*http.Cookie) (cartJSON, *http.Cookie) {
	t.Helper()
	res, body := request(t, h, "POST", "/api/cart", "application/json", fmt.Sprintf(`{"product":%q}`, product), cookies...)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST /api/cart %s: status %d, body %s", product, res.StatusCode, body)
	}
	var c cartJSON
	if err := json.Unmarshal([]byte(body), &c); err != nil {
		t.Fatalf("POST /api/cart: %v in %s", err, body)
	}
	return c, cartCookieOf(res)
}

func cartCookieOf(res *http.Response) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == cartCookie {
			return c
		}
	}
	return nil
}

func TestPages(t *testing.T) {
	shop := New()
	tests := []struct {
		path  string
		title string
		want  []string // substrings the page must contain
	}{
		{"/", "<title>Cobrowse Demo Shop</title>", []string{
			`<h1>Cobrowse Demo Shop</h1>`, `<ul id="products"`, `<li class="product"`,
		}},
		{"/checkout", "<title>Checkout — Cobrowse Demo Shop</title>", []string{
			`<form id="checkout-form"`, `method="post" action="/order"`,
			`id="name" name="name" type="text" autocomplete="name"`,
			`id="email" name="email" type="email"`,
			`id="card" name="card" type="text" autocomplete="cc-number" inputmode="numeric"`,
			`id="password" name="password" type="password"`,
			`<button id="place-order" class="button primary wide" type="submit"`,
		}},
	}
	common := []string{
		"<!doctype html>", `<meta charset="utf-8">`, `<meta name="viewport"`,
		`<link rel="stylesheet" href="/css/shop.css">`, `<script src="/js/shop.js" defer></script>`, "<style>",
		`<details id="cart"`, `id="cart-count"`, `<ul id="cart-items">`, `id="cart-total"`,
		`<a id="checkout-link" class="button" href="/checkout">`,
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, body := request(t, shop, "GET", tt.path, "", "")
			if res.StatusCode != http.StatusOK {
				t.Fatalf("status %d", res.StatusCode)
			}
			if got := res.Header.Get("Content-Type"); got != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", got)
			}
			if got := res.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			for _, want := range append(append([]string{tt.title}, tt.want...), common...) {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %s", want)
				}
			}
			if strings.Contains(body, "://") {
				t.Errorf("page references an absolute URL; the demo must load nothing external")
			}
		})
	}
}

var addButton = regexp.MustCompile(`<button[^>]*class="[^"]*\badd-to-cart\b[^"]*"[^>]*data-product="([^"]+)"`)

func TestHomeListsProducts(t *testing.T) {
	_, body := request(t, New(), "GET", "/", "", "")
	if n := strings.Count(body, `<li class="product"`); n < 6 {
		t.Errorf("%d products, want at least 6", n)
	}
	buttons := addButton.FindAllStringSubmatch(body, -1)
	if len(buttons) != len(catalog()) {
		t.Fatalf("%d add-to-cart buttons, want one per product (%d)", len(buttons), len(catalog()))
	}
	for i, p := range catalog() {
		if buttons[i][1] != p.ID {
			t.Errorf("button %d has data-product %q, want %q", i, buttons[i][1], p.ID)
		}
		for _, want := range []string{`<img src="` + p.Image + `" alt="` + p.Name + `"`, p.Name, money(p.PriceCents)} {
			if !strings.Contains(body, want) {
				t.Errorf("product %s: page lacks %s", p.ID, want)
			}
		}
	}
}

var (
	htmlRef = regexp.MustCompile(`(?:src|href)="([^"#]+)"`)
	cssRef  = regexp.MustCompile(`url\("?([^")]+)"?\)`)
)

// TestAssetsResolve fetches everything the pages reference, the url()s in
// the stylesheet and in the script, and checks each is served with its type.
func TestAssetsResolve(t *testing.T) {
	shop := New()
	refs := map[string]bool{}
	for _, page := range []string{"/", "/checkout", "/nope"} {
		_, body := request(t, shop, "GET", page, "", "")
		for _, m := range htmlRef.FindAllStringSubmatch(body, -1) {
			refs[m[1]] = true
		}
	}
	for _, src := range []string{"/css/shop.css", "/js/shop.js"} {
		_, body := request(t, shop, "GET", src, "", "")
		for _, m := range cssRef.FindAllStringSubmatch(body, -1) {
			base, _ := url.Parse(src)
			ref, err := base.Parse(m[1])
			if err != nil {
				t.Fatalf("%s: bad url(%s): %v", src, m[1], err)
			}
			refs[ref.Path] = true
		}
	}
	wantType := map[string]string{
		"":       "text/html; charset=utf-8",
		".css":   "text/css; charset=utf-8",
		".js":    "text/javascript; charset=utf-8",
		".svg":   "image/svg+xml",
		".woff2": "font/woff2",
	}
	seen := map[string]bool{}
	for ref := range refs {
		ext := path.Ext(ref)
		seen[ext] = true
		res, body := request(t, shop, "GET", ref, "", "")
		if res.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", ref, res.StatusCode)
			continue
		}
		if got, want := res.Header.Get("Content-Type"), wantType[ext]; got != want {
			t.Errorf("%s: Content-Type %q, want %q", ref, got, want)
		}
		if ext == ".woff2" && !strings.HasPrefix(body, "wOF2") {
			t.Errorf("%s is not a WOFF2 file", ref)
		}
		if ext != "" && ext != ".svg" && strings.Contains(body, "://") {
			t.Errorf("%s references an absolute URL; the demo must load nothing external", ref)
		}
	}
	for ext := range wantType {
		if !seen[ext] {
			t.Errorf("no reference to a %q file found; the test's extraction is broken", ext)
		}
	}
}

func TestAssetRevalidation(t *testing.T) {
	shop := New()
	res, _ := request(t, shop, "GET", "/css/shop.css", "", "")
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("ETag %q, Cache-Control %q", etag, res.Header.Get("Cache-Control"))
	}
	req := httptest.NewRequest("GET", "/css/shop.css", nil)
	req.Header.Set("If-None-Match", etag)
	rec := httptest.NewRecorder()
	shop.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("revalidation: status %d, want 304", rec.Code)
	}
}

func TestEveryEmbeddedFileHasAType(t *testing.T) {
	// New panics otherwise; this also checks the font licence ships.
	res, body := request(t, New(), "GET", "/fonts/OFL.txt", "", "")
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "SIL Open Font License") {
		t.Errorf("font licence: status %d", res.StatusCode)
	}
}

func TestCartAPI(t *testing.T) {
	shop := New()

	res, body := request(t, shop, "GET", "/api/cart", "", "")
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET empty cart: status %d, type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if want := `{"count":0,"items":[],"subtotal":"$0.00","subtotal_cents":0}`; strings.TrimSpace(body) != want {
		t.Errorf("empty cart = %s, want %s", body, want)
	}

	c, cookie := addToCart(t, shop, "mug")
	if cookie == nil {
		t.Fatal("first add set no demo_cart cookie")
	}
	if !cookie.HttpOnly || cookie.Path != "/" || cookie.Value == "" {
		t.Errorf("cookie %+v, want HttpOnly with Path=/", cookie)
	}
	if c.Count != 1 {
		t.Errorf("count %d after one add", c.Count)
	}

	c, again := addToCart(t, shop, "tshirt", cookie)
	if again != nil {
		t.Errorf("second add replaced the cookie")
	}
	c, _ = addToCart(t, shop, "mug", cookie)
	want := cartJSON{Count: 3, Subtotal: "$52.00", SubtotalCents: 5200, Items: []itemJSON{
		{Product: "mug", Name: "Cobrowse Mug", Quantity: 2, Subtotal: "$28.00"},
		{Product: "tshirt", Name: "Pointer T-shirt", Quantity: 1, Subtotal: "$24.00"},
	}}
	if fmt.Sprint(c) != fmt.Sprint(want) {
		t.Errorf("cart = %+v, want %+v", c, want)
	}

	_, body = request(t, shop, "GET", "/api/cart", "", "", cookie)
	var got cartJSON
	if err := json.Unmarshal([]byte(body), &got); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("GET cart = %s (%v), want %+v", body, err, want)
	}

	// The header of every page shows the same cart.
	for _, page := range []string{"/", "/checkout"} {
		_, body := request(t, shop, "GET", page, "", "", cookie)
		for _, s := range []string{
			`<span id="cart-count" class="cart-count" aria-label="items in cart">3</span>`,
			`<li class="cart-item" data-product="mug"><span class="cart-item-name">Cobrowse Mug</span> <span class="cart-item-qty">× 2</span></li>`,
			`<li class="cart-item" data-product="tshirt">`,
		} {
			if !strings.Contains(body, s) {
				t.Errorf("%s lacks %s", page, s)
			}
		}
	}

	// Another browser sees its own cart.
	c, other := addToCart(t, shop, "cap")
	if c.Count != 1 || other == nil || other.Value == cookie.Value {
		t.Errorf("second visitor shares the first one's cart")
	}
}

func TestCartAPIErrors(t *testing.T) {
	shop := New()
	tests := []struct {
		name        string
		method      string
		contentType string
		body        string
		status      int
	}{
		{"unknown product", "POST", "application/json", `{"product":"yacht"}`, http.StatusBadRequest},
		{"empty product", "POST", "application/json", `{}`, http.StatusBadRequest},
		{"malformed JSON", "POST", "application/json", `{"product":`, http.StatusBadRequest},
		{"not an object", "POST", "application/json", `["mug"]`, http.StatusBadRequest},
		{"unknown field", "POST", "application/json", `{"product":"mug","quantity":1000}`, http.StatusBadRequest},
		{"trailing data", "POST", "application/json", `{"product":"mug"}{"product":"mug"}`, http.StatusBadRequest},
		{"huge body", "POST", "application/json", `{"product":"` + strings.Repeat("a", 1<<20) + `"}`, http.StatusBadRequest},
		{"form post", "POST", "application/x-www-form-urlencoded", `product=mug`, http.StatusUnsupportedMediaType},
		{"wrong method", "DELETE", "", "", http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, body := request(t, shop, tt.method, "/api/cart", tt.contentType, tt.body)
			if res.StatusCode != tt.status {
				t.Errorf("status %d, want %d", res.StatusCode, tt.status)
			}
			var e apiError
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == "" {
				t.Errorf("body %q is not a JSON error", body)
			}
			if cartCookieOf(res) != nil {
				t.Errorf("a refused request created a cart")
			}
		})
	}
}

func TestCartQuantityIsBounded(t *testing.T) {
	shop := New()
	_, cookie := addToCart(t, shop, "mug")
	for range maxQuantity - 1 {
		addToCart(t, shop, "mug", cookie)
	}
	res, _ := request(t, shop, "POST", "/api/cart", "application/json", `{"product":"mug"}`, cookie)
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("add beyond %d: status %d, want 400", maxQuantity, res.StatusCode)
	}
	if c, _ := addToCart(t, shop, "cap", cookie); c.Count != maxQuantity+1 {
		t.Errorf("count %d, want %d", c.Count, maxQuantity+1)
	}
}

func TestCartsAreEvicted(t *testing.T) {
	shop := New()
	shop.carts = newCartStore(2)
	_, first := addToCart(t, shop, "mug")
	_, second := addToCart(t, shop, "mug")
	addToCart(t, shop, "mug", first) // first is now the most recently used
	_, third := addToCart(t, shop, "mug")

	if n := shop.carts.lru.Len(); n != 2 || len(shop.carts.byID) != 2 {
		t.Fatalf("store holds %d carts (%d ids), want 2", n, len(shop.carts.byID))
	}
	for _, tt := range []struct {
		cookie *http.Cookie
		count  int
	}{{first, 2}, {second, 0}, {third, 1}} {
		_, body := request(t, shop, "GET", "/api/cart", "", "", tt.cookie)
		var c cartJSON
		json.Unmarshal([]byte(body), &c)
		if c.Count != tt.count {
			t.Errorf("cart %s: count %d, want %d", tt.cookie.Value, c.Count, tt.count)
		}
	}
	// An evicted cart's browser gets a new cart and cookie on its next add.
	c, replaced := addToCart(t, shop, "cap", second)
	if c.Count != 1 || replaced == nil || replaced.Value == second.Value {
		t.Errorf("add with an evicted cart: count %d, cookie %v", c.Count, replaced)
	}
}

func TestConcurrentCarts(t *testing.T) {
	shop := New()
	shop.carts = newCartStore(8)
	// Each goroutine is one browser; t.Errorf, not t.Fatal, off the test goroutine.
	browse := func(product string) error {
		var cookie *http.Cookie
		for range 20 {
			req := httptest.NewRequest("POST", "/api/cart", strings.NewReader(`{"product":"`+product+`"}`))
			req.Header.Set("Content-Type", "application/json")
			if cookie != nil {
				req.AddCookie(cookie)
			}
			rec := httptest.NewRecorder()
			shop.ServeHTTP(rec, req)
			if rec.Code != http.StatusOK {
				return fmt.Errorf("add %s: status %d", product, rec.Code)
			}
			if c := cartCookieOf(rec.Result()); c != nil {
				cookie = c
			}
			page := httptest.NewRequest("GET", "/", nil)
			page.AddCookie(cookie)
			shop.ServeHTTP(httptest.NewRecorder(), page)
		}
		return nil
	}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := browse(catalog()[i%6].ID); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := shop.carts.lru.Len(); n > 8 {
		t.Errorf("store holds %d carts, want at most 8", n)
	}
}

const (
	testCard     = "4000 0566 5566 5556" // not the placeholder, which the page shows
	testPassword = "s3cret-Horse-battery"
)

func orderForm(name, email, card, password string) string {
	return url.Values{"name": {name}, "email": {email}, "card": {card}, "password": {password}}.Encode()
}

// assertNoSecrets fails if body contains any of secrets, with or without
// spaces.
func assertNoSecrets(t *testing.T, body string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if secret == "" {
			continue
		}
		if strings.Contains(body, secret) || strings.Contains(body, strings.ReplaceAll(secret, " ", "")) {
			t.Errorf("page echoes %q", secret)
		}
	}
}

func TestOrder(t *testing.T) {
	shop := New()
	_, cookie := addToCart(t, shop, "mug")
	addToCart(t, shop, "bottle", cookie)

	res, body := request(t, shop, "POST", "/order", "application/x-www-form-urlencoded",
		orderForm("Ada <Lovelace>", "ada@example.com", testCard, testPassword), cookie)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", res.StatusCode, body)
	}
	if res.Header.Get("Content-Type") != "text/html; charset=utf-8" || res.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers %v", res.Header)
	}
	for _, want := range []string{
		"<title>Thank you — Cobrowse Demo Shop</title>",
		`<h1 id="thank-you">Thank you, Ada &lt;Lovelace&gt;</h1>`,
		"ada@example.com", "Cobrowse Mug", "Steel Bottle", "$47.00", // 14 + 28 + 5 shipping
		`id="cart-count" class="cart-count" aria-label="items in cart">0<`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("confirmation lacks %s", want)
		}
	}
	assertNoSecrets(t, body, testCard, testPassword)
	if c := cartCookieOf(res); c == nil || c.MaxAge >= 0 {
		t.Errorf("confirmation does not clear the cart cookie: %v", c)
	}
	_, body = request(t, shop, "GET", "/api/cart", "", "", cookie)
	if !strings.Contains(body, `"count":0`) {
		t.Errorf("cart after order = %s, want empty", body)
	}
}

func TestOrderRefused(t *testing.T) {
	shop := New()
	_, cookie := addToCart(t, shop, "mug")
	tests := []struct {
		name                        string
		fullName, email, card, pass string
		noCart                      bool
		want                        string
	}{
		{name: "empty cart", fullName: "Ada", email: "ada@example.com", card: testCard, noCart: true, want: "Your cart is empty"},
		{name: "no name", email: "ada@example.com", card: testCard, want: "Please enter your name."},
		{name: "bad email", fullName: "Ada", email: "ada", card: testCard, want: "valid email"},
		{name: "short card", fullName: "Ada", email: "ada@example.com", card: "4000 0566", want: "12 to 19 digits"},
		{name: "letters in card", fullName: "Ada", email: "ada@example.com", card: "4000 0566 5566 abcd", want: "12 to 19 digits"},
		{name: "short password", fullName: "Ada", email: "ada@example.com", card: testCard, pass: "short7", want: "at least 8 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cookies []*http.Cookie
			if !tt.noCart {
				cookies = append(cookies, cookie)
			}
			res, body := request(t, shop, "POST", "/order", "application/x-www-form-urlencoded",
				orderForm(tt.fullName, tt.email, tt.card, tt.pass), cookies...)
			if res.StatusCode != http.StatusUnprocessableEntity {
				t.Errorf("status %d, want 422", res.StatusCode)
			}
			if !strings.Contains(body, `id="form-errors"`) || !strings.Contains(body, tt.want) {
				t.Errorf("page lacks the error %q", tt.want)
			}
			if tt.email != "" && !strings.Contains(body, `value="`+tt.email+`"`) {
				t.Errorf("email not refilled")
			}
			assertNoSecrets(t, body, tt.card, tt.pass)
		})
	}
	// A refused order keeps the cart.
	_, body := request(t, shop, "GET", "/api/cart", "", "", cookie)
	if !strings.Contains(body, `"count":1`) {
		t.Errorf("cart after refused orders = %s", body)
	}
}

func TestNotFoundAndMethods(t *testing.T) {
	shop := New()
	tests := []struct {
		method, path string
		status       int
	}{
		{"GET", "/nope", http.StatusNotFound},
		{"GET", "/checkout/", http.StatusNotFound},
		{"GET", "/images/nope.svg", http.StatusNotFound},
		{"GET", "/site/templates/layout.html", http.StatusNotFound},
		{"GET", "/templates/layout.html", http.StatusNotFound},
		{"GET", "/order", http.StatusMethodNotAllowed},
		{"POST", "/", http.StatusMethodNotAllowed},
		{"POST", "/checkout", http.StatusMethodNotAllowed},
		{"POST", "/css/shop.css", http.StatusMethodNotAllowed},
		{"HEAD", "/", http.StatusOK},
		{"HEAD", "/fonts/dm-serif-display-latin-400-normal.woff2", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			res, body := request(t, shop, tt.method, tt.path, "", "")
			if res.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", res.StatusCode, tt.status)
			}
			if tt.status == http.StatusNotFound {
				if res.Header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, "<h1>Page not found</h1>") {
					t.Errorf("not the 404 page: %s", body)
				}
			}
			if tt.status == http.StatusMethodNotAllowed && res.Header.Get("Allow") == "" {
				t.Errorf("405 without Allow")
			}
		})
	}
}

// TestPromoIsCSSInJS pins what makes the promo widget a test of CSSOM
// capture: the page ships no #promo styles as text; the script inserts them.
func TestPromoIsCSSInJS(t *testing.T) {
	shop := New()
	_, js := request(t, shop, "GET", "/js/shop.js", "", "")
	for _, want := range []string{`style.id = 'cssinjs'`, "insertRule(", "promo.id = 'promo'", "#cart-count {"} {
		if !strings.Contains(js, want) {
			t.Errorf("shop.js lacks %s", want)
		}
	}
	_, css := request(t, shop, "GET", "/css/shop.css", "", "")
	_, page := request(t, shop, "GET", "/", "", "")
	if strings.Contains(css, "#promo") || strings.Contains(page, "#promo") {
		t.Errorf("#promo styles appear as text; they must exist only in the CSSOM")
	}
}
