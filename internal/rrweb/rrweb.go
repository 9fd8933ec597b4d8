// Package rrweb names what the hub and the Redactor share about rrweb's
// events: their types, and an event together with the part of it the hub
// reads, so that an event read once (by the Redactor) is not read again.
package rrweb

import (
	"encoding/json"
	"errors"
	"fmt"
)

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
// it: its JSON and what the hub reads of it (see Parse).
type Event struct {
	// JSON is the event: a JSON object whose type is Type and which has a
	// numeric timestamp.
	JSON json.RawMessage
	Type int
	// Href is the page URL of a Meta event.
	Href string
}

// Parse checks raw as an event and reads its envelope: a JSON object with
// a type rrweb knows (DOMContentLoaded to Plugin) and a numeric timestamp.
// What is not one is refused: what the hub cannot classify it does not
// forward (fail closed).
func Parse(raw json.RawMessage) (Event, error) {
	var env struct {
		Type      *int     `json:"type"`
		Timestamp *float64 `json:"timestamp"`
		Data      struct {
			Href string `json:"href"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return Event{}, fmt.Errorf("event is not a JSON object: %w", err)
	}
	if env.Type == nil || *env.Type < DOMContentLoaded || *env.Type > Plugin {
		return Event{}, errors.New("event has a missing or unknown type")
	}
	if env.Timestamp == nil {
		return Event{}, errors.New("event has no timestamp")
	}
	ev := Event{JSON: raw, Type: *env.Type}
	if ev.Type == Meta {
		ev.Href = env.Data.Href
	}
	return ev, nil
}
