package policies

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The rrweb 2.x event model, as far as the Redactor reads it (see
// @rrweb/types in web/node_modules). Events are decoded into these types and
// encoded again from them, so an event reaches agents with only the fields
// listed here: whatever else a visitor script sends (a newer rrweb's fields,
// or a hostile script's) is dropped, not passed on unread.

// rrweb incremental snapshot sources (IncrementalSource).
const (
	sourceMutation          = 0
	sourceMouseMove         = 1
	sourceMouseInteraction  = 2
	sourceScroll            = 3
	sourceViewportResize    = 4
	sourceInput             = 5
	sourceTouchMove         = 6
	sourceMediaInteraction  = 7
	sourceStyleSheetRule    = 8
	sourceFont              = 10
	sourceDrag              = 12
	sourceStyleDeclaration  = 13
	sourceSelection         = 14
	sourceAdoptedStyleSheet = 15
	sourceCustomElement     = 16
)

// rrweb serialized node types (NodeType).
const (
	nodeDocument     = 0
	nodeDocumentType = 1
	nodeElement      = 2
	nodeText         = 3
	nodeCDATA        = 4
	nodeComment      = 5
)

// event is one rrweb event: its type, its data (decoded by type) and its
// time. Delay is set by rrweb's replayer only, but kept if present.
type event struct {
	Type      int             `json:"type"`
	Data      json.RawMessage `json:"data"`
	Timestamp json.Number     `json:"timestamp"`
	Delay     *json.Number    `json:"delay,omitempty"`

	// snapshot is a FullSnapshot's Data already decoded (by parseEnvelope):
	// see decodeSnapshot.
	snapshot *decodedSnapshot
}

// metaData is the data of a Meta event: the page's URL and viewport.
type metaData struct {
	Href   string      `json:"href"`
	Width  json.Number `json:"width"`
	Height json.Number `json:"height"`
}

// fullSnapshotData is the data of a FullSnapshot event.
type fullSnapshotData struct {
	Node          *snode `json:"node"`
	InitialOffset struct {
		Top  json.Number `json:"top"`
		Left json.Number `json:"left"`
	} `json:"initialOffset"`
}

// snode is a serialized DOM node (serializedNodeWithId). Which fields
// belong to which type is rrweb's; MarshalJSON writes only those of Type.
type snode struct {
	Type         int    `json:"type"`
	ID           int64  `json:"id"`
	RootID       *int64 `json:"rootId,omitempty"`
	IsShadowHost bool   `json:"isShadowHost,omitempty"`
	IsShadow     bool   `json:"isShadow,omitempty"`

	ChildNodes []*snode `json:"childNodes"` // document, element
	CompatMode string   `json:"compatMode,omitempty"`

	Name     string `json:"name"` // document type
	PublicID string `json:"publicId"`
	SystemID string `json:"systemId"`

	TagName    string     `json:"tagName"` // element
	Attributes attributes `json:"attributes"`
	IsSVG      bool       `json:"isSVG,omitempty"`
	NeedBlock  bool       `json:"needBlock,omitempty"`
	IsCustom   bool       `json:"isCustom,omitempty"`

	TextContent string `json:"textContent"` // text, CDATA, comment
	IsStyle     bool   `json:"isStyle,omitempty"`

	// sent, if not nil, is the node as the Redactor sends it, already
	// written as JSON (Redactor.serialize); the other fields are unused.
	sent []byte
}

// MarshalJSON writes the fields of the node's type only. It writes the
// whole subtree itself, in one buffer: as a json.Marshaler per node,
// encoding/json would check and copy each child's output again at every
// level of the tree.
func (n *snode) MarshalJSON() ([]byte, error) {
	return appendNode(nil, n)
}

// appendNode appends the JSON of n and its subtree to b.
func appendNode(b []byte, n *snode) ([]byte, error) {
	if n == nil {
		return nil, errors.New("policies: a missing node in a snapshot")
	}
	if n.sent != nil {
		return append(b, n.sent...), nil
	}
	b = append(b, `{"type":`...)
	b = strconv.AppendInt(b, int64(n.Type), 10)
	b = append(b, `,"id":`...)
	b = strconv.AppendInt(b, n.ID, 10)
	if n.RootID != nil {
		b = append(b, `,"rootId":`...)
		b = strconv.AppendInt(b, *n.RootID, 10)
	}
	if n.IsShadowHost {
		b = append(b, `,"isShadowHost":true`...)
	}
	if n.IsShadow {
		b = append(b, `,"isShadow":true`...)
	}
	var err error
	switch n.Type {
	case nodeDocument:
		if b, err = appendChildren(b, n.ChildNodes); err != nil {
			return nil, err
		}
		if n.CompatMode != "" {
			b = appendString(append(b, `,"compatMode":`...), n.CompatMode)
		}
	case nodeDocumentType:
		b = appendString(append(b, `,"name":`...), n.Name)
		b = appendString(append(b, `,"publicId":`...), n.PublicID)
		b = appendString(append(b, `,"systemId":`...), n.SystemID)
	case nodeElement:
		b = appendString(append(b, `,"tagName":`...), n.TagName)
		b = appendAttributes(append(b, `,"attributes":`...), n.Attributes)
		if b, err = appendChildren(b, n.ChildNodes); err != nil {
			return nil, err
		}
		if n.IsSVG {
			b = append(b, `,"isSVG":true`...)
		}
		if n.NeedBlock {
			b = append(b, `,"needBlock":true`...)
		}
		if n.IsCustom {
			b = append(b, `,"isCustom":true`...)
		}
	case nodeText, nodeCDATA, nodeComment:
		b = appendString(append(b, `,"textContent":`...), n.TextContent)
		if n.IsStyle && n.Type == nodeText {
			b = append(b, `,"isStyle":true`...)
		}
	default:
		return nil, fmt.Errorf("policies: node %d has unknown type %d", n.ID, n.Type)
	}
	return append(b, '}'), nil
}

// appendChildren appends a "childNodes" member (always a list: rrweb's
// replayer iterates over it without checking that it exists).
func appendChildren(b []byte, kids []*snode) ([]byte, error) {
	b = append(b, `,"childNodes":[`...)
	for i, kid := range kids {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = appendNode(b, kid); err != nil {
			return nil, err
		}
	}
	return append(b, ']'), nil
}

// appendString appends s as a JSON string, as encoding/json writes it
// (invalid UTF-8 replaced by U+FFFD; <, >, &, U+2028 and U+2029 escaped).
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(append(b, s[start:i]...), `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(append(b, s[start:i]...), '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(append(b, s[start:]...), '"')
}

// attributes are an element's attributes as rrweb serializes them (or the
// changes of an attribute mutation), in name order, each name once.
type attributes []attribute

// attribute is one attribute: its name and value as rrweb sent them (valid
// JSON: a string, a number, true for present without a value, null for
// absent, or in a mutation a style object), and its value as the DOM has
// it (attrString's), decoded once when the attribute is read. Redaction's
// output (attributes to send) sets name and raw only.
type attribute struct {
	name    string
	raw     json.RawMessage
	val     string
	present bool
}

// newAttribute returns the attribute name with the value raw, valid JSON.
func newAttribute(name string, raw json.RawMessage) attribute {
	val, present := attrString(raw)
	return attribute{name: name, raw: raw, val: val, present: present}
}

// stringAttribute returns the attribute name with the string value s.
func stringAttribute(name, s string) attribute {
	return attribute{name: name, raw: encodeString(s), val: s, present: true}
}

// set puts a in its place in as, replacing the value it had.
func (as *attributes) set(a attribute) {
	i, found := slices.BinarySearchFunc(*as, a.name, compareName)
	if found {
		(*as)[i] = a
		return
	}
	*as = slices.Insert(*as, i, a)
}

// remove takes the attribute name out of as.
func (as *attributes) remove(name string) {
	if i, found := slices.BinarySearchFunc(*as, name, compareName); found {
		*as = slices.Delete(*as, i, i+1)
	}
}

func compareName(a attribute, name string) int { return strings.Compare(a.name, name) }

// appendAttributes appends as as a JSON object. The values are the
// decoder's (valid JSON) or redaction's; the hub checks the whole event
// again.
func appendAttributes(b []byte, as attributes) []byte {
	b = append(b, '{')
	for i, a := range as {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, a.name), ':')
		if len(a.raw) == 0 {
			b = append(b, "null"...) // as encoding/json writes a nil json.RawMessage
		} else {
			b = append(b, a.raw...)
		}
	}
	return append(b, '}')
}

// MarshalJSON writes the attributes as a JSON object, as appendNode does.
func (as attributes) MarshalJSON() ([]byte, error) {
	return appendAttributes(nil, as), nil
}

// UnmarshalJSON reads a JSON object of attribute values with encoding/json
// (as the scanner's rawValues does), so that these types stay what
// encoding/json reads events into: the reference the scanner is fuzzed
// against. null leaves the list as it is.
func (as *attributes) UnmarshalJSON(b []byte) error {
	var values map[string]json.RawMessage
	if err := json.Unmarshal(b, &values); err != nil || values == nil {
		return err
	}
	*as = make(attributes, 0, len(values))
	for name, raw := range values {
		as.set(newAttribute(name, raw))
	}
	return nil
}

// attrString returns the attribute's value as the DOM would have it, and
// whether it is present.
func attrString(v json.RawMessage) (string, bool) {
	switch {
	case len(v) == 0 || string(v) == "null" || string(v) == "false":
		return "", false
	case string(v) == "true":
		return "", true
	case v[0] == '"':
		if len(v) < 2 || v[len(v)-1] != '"' {
			return "", false
		}
		return unquote(v[1 : len(v)-1])
	default: // a number
		return string(v), true
	}
}

// encodeString encodes s as a JSON string.
func encodeString(s string) json.RawMessage {
	return appendString(nil, s)
}

// mutationData is the data of a Mutation: what the replayer applies, in
// this order: removes, adds, texts, attributes.
type mutationData struct {
	Source         int               `json:"source"`
	Texts          []textMutation    `json:"texts"`
	Attributes     []attributeChange `json:"attributes"`
	Removes        []removedNode     `json:"removes"`
	Adds           []addedNode       `json:"adds"`
	IsAttachIframe bool              `json:"isAttachIframe,omitempty"`
}

type textMutation struct {
	ID    int64   `json:"id"`
	Value *string `json:"value"`
}

type attributeChange struct {
	ID         int64      `json:"id"`
	Attributes attributes `json:"attributes"`
}

type removedNode struct {
	ParentID int64 `json:"parentId"`
	ID       int64 `json:"id"`
	IsShadow bool  `json:"isShadow,omitempty"`
}

type addedNode struct {
	ParentID   int64  `json:"parentId"`
	PreviousID *int64 `json:"previousId,omitempty"`
	NextID     *int64 `json:"nextId"`
	Node       *snode `json:"node"`
}

// inputData is the data of an Input event.
type inputData struct {
	Source        int    `json:"source"`
	ID            int64  `json:"id"`
	Text          string `json:"text"`
	IsChecked     bool   `json:"isChecked"`
	UserTriggered *bool  `json:"userTriggered,omitempty"`
}

// selectionData is the data of a Selection event.
type selectionData struct {
	Source int `json:"source"`
	Ranges []struct {
		Start       int64       `json:"start"`
		StartOffset json.Number `json:"startOffset"`
		End         int64       `json:"end"`
		EndOffset   json.Number `json:"endOffset"`
	} `json:"ranges"`
}

// styleSheetRuleData is the data of a StyleSheetRule event: CSSOM rule
// changes, whose text may hold content: strings.
type styleSheetRuleData struct {
	Source      int               `json:"source"`
	ID          *int64            `json:"id,omitempty"`
	StyleID     *int64            `json:"styleId,omitempty"`
	Removes     []json.RawMessage `json:"removes,omitempty"` // {index}: numbers only, re-encoded below
	Adds        []styleRuleAdd    `json:"adds,omitempty"`
	Replace     *string           `json:"replace,omitempty"`
	ReplaceSync *string           `json:"replaceSync,omitempty"`
}

type styleRuleAdd struct {
	Rule  string          `json:"rule"`
	Index json.RawMessage `json:"index,omitempty"` // a number or a list of numbers
}

type styleRuleRemove struct {
	Index json.RawMessage `json:"index"`
}

// styleDeclarationData is the data of a StyleDeclaration event.
type styleDeclarationData struct {
	Source  int            `json:"source"`
	ID      *int64         `json:"id,omitempty"`
	StyleID *int64         `json:"styleId,omitempty"`
	Index   []int64        `json:"index"`
	Set     *styleSet      `json:"set,omitempty"`
	Remove  *styleProperty `json:"remove,omitempty"`
}

type styleSet struct {
	Property string  `json:"property"`
	Value    *string `json:"value"`
	Priority *string `json:"priority,omitempty"`
}

type styleProperty struct {
	Property string `json:"property"`
}

// adoptedStyleSheetData is the data of an AdoptedStyleSheet event.
type adoptedStyleSheetData struct {
	Source int   `json:"source"`
	ID     int64 `json:"id"`
	Styles []struct {
		StyleID int64          `json:"styleId"`
		Rules   []styleRuleAdd `json:"rules"`
	} `json:"styles,omitempty"`
	StyleIDs []int64 `json:"styleIds"`
}

// pointer events: positions only, no content. They are decoded and encoded
// again like everything else, so that no unknown field passes.
type mouseMoveData struct {
	Source    int `json:"source"`
	Positions []struct {
		X          json.Number `json:"x"`
		Y          json.Number `json:"y"`
		ID         int64       `json:"id"`
		TimeOffset json.Number `json:"timeOffset"`
	} `json:"positions"`
}

type mouseInteractionData struct {
	Source      int          `json:"source"`
	Type        int          `json:"type"`
	ID          int64        `json:"id"`
	X           *json.Number `json:"x,omitempty"`
	Y           *json.Number `json:"y,omitempty"`
	PointerType *int         `json:"pointerType,omitempty"`
}

type scrollData struct {
	Source int         `json:"source"`
	ID     int64       `json:"id"`
	X      json.Number `json:"x"`
	Y      json.Number `json:"y"`
}

type viewportResizeData struct {
	Source int         `json:"source"`
	Width  json.Number `json:"width"`
	Height json.Number `json:"height"`
}

type mediaInteractionData struct {
	Source       int          `json:"source"`
	Type         int          `json:"type"`
	ID           int64        `json:"id"`
	CurrentTime  *json.Number `json:"currentTime,omitempty"`
	Volume       *json.Number `json:"volume,omitempty"`
	Muted        *bool        `json:"muted,omitempty"`
	Loop         *bool        `json:"loop,omitempty"`
	PlaybackRate *json.Number `json:"playbackRate,omitempty"`
}

type fontData struct {
	Source      int               `json:"source"`
	Family      string            `json:"family"`
	FontSource  string            `json:"fontSource"`
	Buffer      bool              `json:"buffer"`
	Descriptors map[string]string `json:"descriptors,omitempty"`
}

type customElementData struct {
	Source int `json:"source"`
	Define *struct {
		Name string `json:"name"`
	} `json:"define,omitempty"`
}
