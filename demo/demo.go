// Package demo is the small web shop that `cobrowse demo` fronts: a
// believable site for newcomers to try co-browsing on, and the upstream that
// end-to-end tests drive in real Chromium.
//
// Besides ordinary pages it deliberately exercises what co-browsing tools
// find hard: a cart that changes the DOM without a reload, a form with card
// number and password fields that must never reach an agent, a widget whose
// styles exist only in the CSSOM (inserted with CSSStyleSheet.insertRule into
// an empty <style id="cssinjs">), a web font loaded through @font-face with a
// relative url(), SVG images and a CSS background image set at runtime.
//
// Everything is embedded in the binary; the site loads no external resources.
// The heading font is DM Serif Display (from @fontsource/dm-serif-display
// 5.3.0), under the SIL Open Font License 1.1, served at /fonts/OFL.txt.
//
// Routes:
//
//	GET  /            product list
//	GET  /checkout    cart summary and checkout form
//	POST /order       places the order, shows "Thank you, <name>"
//	GET  /api/cart    the visitor's cart as JSON
//	POST /api/cart    adds one product, body {"product":"<id>"}; returns the cart
//	GET  /css/, /js/, /images/, /fonts/   static assets
//
// Any other path is a 404 page. Test code relies on these ids and classes:
// #products, li.product, button.add-to-cart[data-product], #cart,
// #cart-count, #cart-items, li.cart-item, #cart-total, a#checkout-link,
// #checkout-form, #name, #email, #card, #password, #place-order,
// #form-errors, #thank-you, #order-number, #promo, style#cssinjs.
package demo

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

//go:embed site
var site embed.FS

const (
	// cartCookie names the HttpOnly cookie that holds a visitor's cart id.
	cartCookie = "demo_cart"
	// maxCarts bounds the carts a Shop keeps in memory.
	maxCarts = 10000
)

// Shop is the demo site. It is an http.Handler that serves every page, asset
// and API route itself; its carts live in the value, so two Shops share
// nothing. Create one with New. A Shop is safe for concurrent use.
type Shop struct {
	products []product
	byID     map[string]product
	carts    *cartStore
	pages    map[string]*template.Template // by template file name
	assets   map[string]asset              // by URL path
	mux      *http.ServeMux
}

// New returns a Shop with empty carts. It panics only if the embedded site is
// broken, which the package's tests rule out.
func New() *Shop {
	s := &Shop{
		products: catalog(),
		byID:     make(map[string]product),
		carts:    newCartStore(maxCarts),
		pages:    make(map[string]*template.Template),
		assets:   mustLoadAssets(site),
		mux:      http.NewServeMux(),
	}
	for _, p := range s.products {
		s.byID[p.ID] = p
	}
	funcs := template.FuncMap{"money": money}
	for _, page := range []string{"home.html", "checkout.html", "order.html", "notfound.html"} {
		s.pages[page] = template.Must(template.New(page).Funcs(funcs).ParseFS(site,
			"site/templates/layout.html", "site/templates/"+page))
	}
	s.mux.HandleFunc("/{$}", s.serveHome)
	s.mux.HandleFunc("/checkout", s.serveCheckout)
	s.mux.HandleFunc("/order", s.serveOrder)
	s.mux.HandleFunc("/api/cart", s.serveCartAPI)
	for _, dir := range []string{"/css/", "/js/", "/images/", "/fonts/"} {
		s.mux.HandleFunc(dir, s.serveAsset)
	}
	s.mux.HandleFunc("/", s.serveNotFound)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Shop) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	s.mux.ServeHTTP(w, r)
}

// pageData is what every page template receives. Fields a page does not use
// stay zero.
type pageData struct {
	Title             string // prefixed to the site name in <title>; empty on the home page
	Cart              cartView
	FreeShippingCents int
	Products          []product    // home
	Form              checkoutForm // checkout: values to refill after an error
	Errors            []string     // checkout: why the order was refused
	Order             *orderView   // order confirmation
}

// checkoutForm holds the checkout fields that may be shown back to the
// visitor. The card number and password are deliberately absent: no page ever
// echoes them.
type checkoutForm struct {
	Name  string
	Email string
}

type orderView struct {
	Number string
	Name   string
	Email  string
	Cart   cartView
}

func (s *Shop) serveHome(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	s.render(w, r, http.StatusOK, "home.html", pageData{Products: s.products})
}

func (s *Shop) serveCheckout(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}
	s.render(w, r, http.StatusOK, "checkout.html", pageData{Title: "Checkout"})
}

// serveOrder validates the checkout form and, if it is complete and the cart
// is not empty, empties the cart and shows the confirmation. Otherwise it
// shows the checkout page again with the reasons, refilling only name and
// email.
func (s *Shop) serveOrder(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodPost) {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "The order form could not be read; please submit it again.", http.StatusBadRequest)
		return
	}
	form := checkoutForm{
		Name:  strings.TrimSpace(r.PostForm.Get("name")),
		Email: strings.TrimSpace(r.PostForm.Get("email")),
	}
	cart := s.cartOf(r)
	if errs := validateOrder(form, r.PostForm.Get("card"), r.PostForm.Get("password"), cart); len(errs) > 0 {
		s.render(w, r, http.StatusUnprocessableEntity, "checkout.html",
			pageData{Title: "Checkout", Form: form, Errors: errs})
		return
	}
	s.carts.remove(cartID(r))
	http.SetCookie(w, &http.Cookie{Name: cartCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	order := &orderView{Number: "CB-" + rand.Text()[:8], Name: form.Name, Email: form.Email, Cart: cart}
	s.render(w, r, http.StatusOK, "order.html", pageData{Title: "Thank you", Order: order})
}

// validateOrder returns what is wrong with an order, in form order, or nil.
// The messages never contain the card number or password.
func validateOrder(form checkoutForm, card, password string, cart cartView) []string {
	var errs []string
	if cart.Count == 0 {
		errs = append(errs, "Your cart is empty: add something before placing an order.")
	}
	switch n := utf8.RuneCountInString(form.Name); {
	case n == 0:
		errs = append(errs, "Please enter your name.")
	case n > 100:
		errs = append(errs, "Your name must be at most 100 characters.")
	}
	if addr, err := mail.ParseAddress(form.Email); err != nil || addr.Address != form.Email || len(form.Email) > 254 {
		errs = append(errs, "Please enter a valid email address.")
	}
	digits := strings.NewReplacer(" ", "", "-", "").Replace(card)
	if len(digits) < 12 || len(digits) > 19 || strings.Trim(digits, "0123456789") != "" {
		errs = append(errs, "Please enter a card number of 12 to 19 digits.")
	}
	if password != "" && utf8.RuneCountInString(password) < 8 {
		errs = append(errs, "An account password needs at least 8 characters; leave it empty to check out as a guest.")
	}
	return errs
}

func (s *Shop) serveNotFound(w http.ResponseWriter, r *http.Request) {
	s.render(w, r, http.StatusNotFound, "notfound.html", pageData{Title: "Page not found"})
}

// render executes page with d, filling in the visitor's cart, and writes it
// with status. HTML is never cached: it shows the cart.
func (s *Shop) render(w http.ResponseWriter, r *http.Request, status int, page string, d pageData) {
	d.Cart = s.cartOf(r)
	d.FreeShippingCents = freeShippingCents
	var buf bytes.Buffer
	if err := s.pages[page].ExecuteTemplate(&buf, "layout", d); err != nil {
		slog.ErrorContext(r.Context(), "demo: rendering page", "page", page, "err", err)
		http.Error(w, "The page could not be rendered.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// serveCartAPI serves GET and POST /api/cart. POST takes exactly
// {"product":"<id>"} as application/json, adds one of that product, sets the
// demo_cart cookie when it creates a cart, and returns the cart like GET.
// Errors are JSON {"error":"..."} with status 400 (bad body, unknown product,
// too many), 405 or 415.
func (s *Shop) serveCartAPI(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		writeJSON(w, http.StatusOK, s.cartOf(r).json())
	case http.MethodPost:
		s.addToCart(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		writeJSON(w, http.StatusMethodNotAllowed, apiError{"use GET to read the cart or POST to add to it"})
	}
}

func (s *Shop) addToCart(w http.ResponseWriter, r *http.Request) {
	// Requiring JSON also keeps cross-site HTML forms from filling carts.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, apiError{"send the request body as application/json"})
		return
	}
	var req struct {
		Product string `json:"product"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.Decode(&struct{}{}) != io.EOF {
		writeJSON(w, http.StatusBadRequest, apiError{`the body must be one JSON object like {"product":"mug"}`})
		return
	}
	if _, ok := s.byID[req.Product]; !ok {
		writeJSON(w, http.StatusBadRequest, apiError{fmt.Sprintf("unknown product %q", req.Product)})
		return
	}
	old := cartID(r)
	id, lines, err := s.carts.add(old, req.Product)
	if errors.Is(err, errTooMany) {
		writeJSON(w, http.StatusBadRequest, apiError{err.Error()})
		return
	}
	if id != old {
		http.SetCookie(w, &http.Cookie{Name: cartCookie, Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	writeJSON(w, http.StatusOK, s.view(lines).json())
}

type apiError struct {
	Error string `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// allowMethods reports whether r uses one of methods. If not, it answers 405
// with an Allow header and the caller must not write anything else.
func allowMethods(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	if slices.Contains(methods, r.Method) {
		return true
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	http.Error(w, "Method not allowed.", http.StatusMethodNotAllowed)
	return false
}

// cartID returns the cart id the browser sent, or "" if it sent none.
func cartID(r *http.Request) string {
	c, err := r.Cookie(cartCookie)
	if err != nil {
		return ""
	}
	return c.Value
}

// cartOf returns the cart of the browser that sent r; it is empty if the
// browser has none, or one the shop no longer keeps.
func (s *Shop) cartOf(r *http.Request) cartView {
	return s.view(s.carts.lines(cartID(r)))
}
