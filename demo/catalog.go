package demo

import "fmt"

// product is one item the shop sells. Prices are in cents so that totals are
// exact.
type product struct {
	ID          string // stable, used in data-product attributes and the cart API
	Name        string
	Description string
	PriceCents  int
	Image       string // URL path of its illustration, served by the shop
}

// catalog returns the products in display order. It returns a fresh slice on
// every call so that no caller can change another's view of it.
func catalog() []product {
	return []product{
		{ID: "mug", Name: "Cobrowse Mug", Description: "Stoneware, 350 ml, keeps coffee warm through a long support shift.", PriceCents: 1400, Image: "/images/mug.svg"},
		{ID: "tshirt", Name: "Pointer T-shirt", Description: "Soft organic cotton with a tiny cursor on the chest.", PriceCents: 2400, Image: "/images/tshirt.svg"},
		{ID: "notebook", Name: "Session Notebook", Description: "A5, dotted pages, lies flat for sketching what the customer sees.", PriceCents: 1200, Image: "/images/notebook.svg"},
		{ID: "tote", Name: "Canvas Tote", Description: "Heavy canvas bag that fits a laptop and lunch.", PriceCents: 1800, Image: "/images/tote.svg"},
		{ID: "cap", Name: "Agent Cap", Description: "Six-panel cap with an adjustable strap. One size fits most.", PriceCents: 2200, Image: "/images/cap.svg"},
		{ID: "bottle", Name: "Steel Bottle", Description: "Double-walled, 750 ml, cold for 24 hours.", PriceCents: 2800, Image: "/images/bottle.svg"},
	}
}

// Shipping rules shown on every page and applied at checkout.
const (
	freeShippingCents = 5000 // orders with a subtotal at or above this ship free
	shippingCents     = 500  // flat rate below freeShippingCents
)

// money formats a non-negative amount of cents in US dollars, e.g. 1400 →
// "$14.00".
func money(cents int) string {
	return fmt.Sprintf("$%d.%02d", cents/100, cents%100)
}
