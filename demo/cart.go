package demo

import (
	"container/list"
	"crypto/rand"
	"errors"
	"sync"
)

// maxQuantity bounds how many of one product a cart may hold.
const maxQuantity = 99

// errTooMany is returned by cartStore.add when a line would exceed maxQuantity.
var errTooMany = errors.New("a cart holds at most 99 of each product")

// cartStore keeps carts in memory, keyed by an opaque random id that the
// browser holds in the demo_cart cookie. It holds at most max carts: adding a
// cart beyond that evicts the least recently used one, so a client that
// discards cookies cannot grow memory without bound. It is safe for
// concurrent use.
type cartStore struct {
	mu   sync.Mutex
	max  int
	lru  *list.List // of *cart; the front is the most recently used
	byID map[string]*list.Element
}

type cart struct {
	id    string
	lines []cartLine // in the order products were first added
}

// cartLine is a quantity of one product. product is always a catalog id: the
// store trusts its callers to have checked it.
type cartLine struct {
	product string
	qty     int
}

func newCartStore(max int) *cartStore {
	return &cartStore{max: max, lru: list.New(), byID: make(map[string]*list.Element)}
}

// lines returns a copy of the lines of the cart named id, or nil if there is
// no such cart (never created, evicted or removed). A found cart counts as
// recently used.
func (s *cartStore) lines(id string) []cartLine {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byID[id]
	if !ok {
		return nil
	}
	s.lru.MoveToFront(e)
	return append([]cartLine(nil), e.Value.(*cart).lines...)
}

// add puts one more of product into the cart named id. If there is no such
// cart it creates one under a fresh random id, so callers must hand the
// returned id back to the browser when it differs from id. It returns that id
// and a copy of the cart's lines, or errTooMany (and no lines) when the line is
// already full, leaving the cart unchanged.
func (s *cartStore) add(id, product string) (string, []cartLine, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byID[id]
	if ok {
		s.lru.MoveToFront(e)
	} else {
		id = rand.Text()
		e = s.lru.PushFront(&cart{id: id})
		s.byID[id] = e
		for s.lru.Len() > s.max {
			oldest := s.lru.Remove(s.lru.Back()).(*cart)
			delete(s.byID, oldest.id)
		}
	}
	c := e.Value.(*cart)
	i := 0
	for i < len(c.lines) && c.lines[i].product != product {
		i++
	}
	if i == len(c.lines) {
		c.lines = append(c.lines, cartLine{product: product})
	}
	if c.lines[i].qty >= maxQuantity {
		return id, nil, errTooMany
	}
	c.lines[i].qty++
	return id, append([]cartLine(nil), c.lines...), nil
}

// remove forgets the cart named id, if there is one.
func (s *cartStore) remove(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.byID[id]; ok {
		s.lru.Remove(e)
		delete(s.byID, id)
	}
}

// cartView is a cart as pages and the API show it.
type cartView struct {
	Lines         []lineView
	Count         int // number of items, counting quantities
	SubtotalCents int
}

type lineView struct {
	Product  product
	Quantity int
}

func (s *Shop) view(lines []cartLine) cartView {
	var v cartView
	for _, l := range lines {
		p := s.byID[l.product]
		v.Lines = append(v.Lines, lineView{Product: p, Quantity: l.qty})
		v.Count += l.qty
		v.SubtotalCents += l.qty * p.PriceCents
	}
	return v
}

// SubtotalCents is the price of a line.
func (l lineView) SubtotalCents() int { return l.Quantity * l.Product.PriceCents }

// ShippingCents is what shipping the cart costs: nothing for an empty cart or
// one at or above the free-shipping threshold, a flat rate otherwise.
func (v cartView) ShippingCents() int {
	if v.Count == 0 || v.SubtotalCents >= freeShippingCents {
		return 0
	}
	return shippingCents
}

// TotalCents is the subtotal plus shipping.
func (v cartView) TotalCents() int { return v.SubtotalCents + v.ShippingCents() }

// cartJSON is the cart API's response body.
type cartJSON struct {
	Count         int        `json:"count"`
	Items         []itemJSON `json:"items"`
	Subtotal      string     `json:"subtotal"`
	SubtotalCents int        `json:"subtotal_cents"`
}

type itemJSON struct {
	Product  string `json:"product"`
	Name     string `json:"name"`
	Quantity int    `json:"quantity"`
	Subtotal string `json:"subtotal"`
}

func (v cartView) json() cartJSON {
	j := cartJSON{Count: v.Count, Items: []itemJSON{}, Subtotal: money(v.SubtotalCents), SubtotalCents: v.SubtotalCents}
	for _, l := range v.Lines {
		j.Items = append(j.Items, itemJSON{Product: l.Product.ID, Name: l.Product.Name, Quantity: l.Quantity, Subtotal: money(l.SubtotalCents())})
	}
	return j
}
