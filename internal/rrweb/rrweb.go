// Package rrweb names what the hub and the Redactor share about rrweb's
// events: their types, and an event together with the part of it the hub
// reads, so that an event read once (by the Redactor) is not read again.
package rrweb

import "encoding/json"

// The types of rrweb events (rrweb's EventType).
const (
	DOMContentLoaded    = 0
	Load                = 1
	FullSnapshot        = 2
	IncrementalSnapshot = 3
	Meta                = 4
	Custom              = 5
	Plugin              = 6
)

// Event is one event of a visitor's stream as the hub stores and forwards
// it: its JSON and what the hub reads of it.
type Event struct {
	// JSON is the event: a JSON object whose type is Type and which has a
	// numeric timestamp.
	JSON json.RawMessage
	Type int
	// Href is the page URL of a Meta event.
	Href string
}
