package policies

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// The rrweb 2.x event model, as far as the Redactor reads it (see
// @rrweb/types in web/node_modules). Events are decoded into these types and
// encoded again from them, so an event reaches agents with only the fields
// listed here: whatever else a visitor script sends (a newer rrweb's fields,
// or a hostile script's) is dropped, not passed on unread.

// rrweb event types (EventType).
const (
	eventDOMContentLoaded = 0
	eventLoad             = 1
	eventFullSnapshot     = 2
	eventIncremental      = 3
	eventMeta             = 4
)

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
}

// MarshalJSON writes the fields of the node's type only.
func (n *snode) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, `{"type":%d,"id":%d`, n.Type, n.ID)
	if n.RootID != nil {
		fmt.Fprintf(&b, `,"rootId":%d`, *n.RootID)
	}
	if n.IsShadowHost {
		b.WriteString(`,"isShadowHost":true`)
	}
	if n.IsShadow {
		b.WriteString(`,"isShadow":true`)
	}
	field := func(name string, v any) error {
		enc, err := json.Marshal(v)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, `,%q:`, name)
		b.Write(enc)
		return nil
	}
	var err error
	switch n.Type {
	case nodeDocument:
		err = field("childNodes", children(n.ChildNodes))
		if err == nil && n.CompatMode != "" {
			err = field("compatMode", n.CompatMode)
		}
	case nodeDocumentType:
		err = errors.Join(field("name", n.Name), field("publicId", n.PublicID), field("systemId", n.SystemID))
	case nodeElement:
		err = errors.Join(field("tagName", n.TagName), field("attributes", n.Attributes), field("childNodes", children(n.ChildNodes)))
		if n.IsSVG {
			b.WriteString(`,"isSVG":true`)
		}
		if n.NeedBlock {
			b.WriteString(`,"needBlock":true`)
		}
		if n.IsCustom {
			b.WriteString(`,"isCustom":true`)
		}
	case nodeText, nodeCDATA, nodeComment:
		err = field("textContent", n.TextContent)
		if n.IsStyle && n.Type == nodeText {
			b.WriteString(`,"isStyle":true`)
		}
	default:
		return nil, fmt.Errorf("policies: node %d has unknown type %d", n.ID, n.Type)
	}
	if err != nil {
		return nil, err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// children returns c, or an empty list for nil: rrweb's replayer iterates
// over childNodes without checking that it exists.
func children(c []*snode) []*snode {
	if c == nil {
		return []*snode{}
	}
	return c
}

// attributes are an element's attributes as rrweb serializes them: a string,
// a number, true (present without a value) or null (absent).
type attributes map[string]json.RawMessage

// stringValue returns the attribute's value as the DOM would have it, and
// whether it is present.
func attrString(v json.RawMessage) (string, bool) {
	switch {
	case len(v) == 0 || string(v) == "null" || string(v) == "false":
		return "", false
	case string(v) == "true":
		return "", true
	case v[0] == '"':
		var s string
		if json.Unmarshal(v, &s) != nil {
			return "", false
		}
		return s, true
	default: // a number
		return string(v), true
	}
}

// encodeString encodes s as a JSON string.
func encodeString(s string) json.RawMessage {
	b, _ := json.Marshal(s) // a string always encodes
	return b
}

// incremental is the part of an IncrementalSnapshot's data that says what it
// is; the rest is decoded by source.
type incremental struct {
	Source *int `json:"source"`
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
	ID         int64                      `json:"id"`
	Attributes map[string]json.RawMessage `json:"attributes"`
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
