package natsbus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/nats-io/nats.go"

	"github.com/cobrowse/cobrowse/assets"
)

// A session's same-origin assets must be fetched with its visitor's
// cookies, which only the node the visitor's requests reach has seen
// (assets.Cookies). So a node that needs an asset of a session another
// node holds (an agent's DOM-mode view, a render worker's tab) asks that
// node ("cobrowse.node.<holder>.asset"), which fetches it as for its own
// agents, with its rules and cache.

// assetRequest is an asset request as it crosses nodes.
type assetRequest struct {
	Session string      `json:"session"`
	URL     string      `json:"url"`
	PageURL string      `json:"pageURL,omitempty"`
	Header  http.Header `json:"header,omitempty"`
}

// assetReply is the answer's metadata; the body is the message's data.
type assetReply struct {
	URL    string      `json:"url,omitempty"`
	Status int         `json:"status,omitempty"`
	Header http.Header `json:"header,omitempty"`
	Error  string      `json:"error,omitempty"`
	// NotAllowed says the holder's rules refused the URL
	// (assets.ErrNotAllowed).
	NotAllowed bool `json:"notAllowed,omitempty"`
}

// hdrAsset carries an assetReply in the reply's header.
const hdrAsset = "Cobrowse-Asset"

// ServeAssets answers other nodes' asset requests for the sessions this
// node holds with fetch (the node's own asset service, which adds the
// visitor's cookies). Call it before Serve.
func (b *Bus) ServeAssets(fetch func(ctx context.Context, req assets.Request) (*assets.Asset, error)) {
	b.fetchAsset = fetch
}

func (b *Bus) serveAsset(m *nats.Msg) {
	var req assetRequest
	if err := json.Unmarshal(m.Data, &req); err != nil || b.fetchAsset == nil {
		replyAsset(m, assetReply{Error: "this node serves no assets"}, nil)
		return
	}
	if _, err := b.hub.Session(req.Session); err != nil {
		replyAsset(m, assetReply{Error: errNotHeld.Error()}, nil)
		return
	}
	// The NATS subscription's goroutine must not wait for the network.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), requestTimeout)
		defer cancel()
		a, err := b.fetchAsset(ctx, assets.Request{URL: req.URL, PageURL: req.PageURL, Header: req.Header, SessionID: req.Session})
		switch {
		case err != nil:
			replyAsset(m, assetReply{Error: err.Error(), NotAllowed: errors.Is(err, assets.ErrNotAllowed)}, nil)
		case len(a.Body) > b.maxPayload():
			replyAsset(m, assetReply{Error: fmt.Sprintf("%v: %d bytes is more than a NATS message holds here", assets.ErrTooLarge, len(a.Body))}, nil)
		default:
			replyAsset(m, assetReply{URL: a.URL, Status: a.Status, Header: a.Header}, a.Body)
		}
	}()
}

func replyAsset(m *nats.Msg, reply assetReply, body []byte) {
	meta, _ := json.Marshal(reply) // plain data: cannot fail
	r := &nats.Msg{Header: nats.Header{}, Data: body}
	r.Header.Set(hdrAsset, string(meta))
	m.RespondMsg(r)
}

// Asset fetches req from the node holding its session. ok is false when
// no other node holds it (the caller fetches it itself).
func (b *Bus) Asset(ctx context.Context, req assets.Request) (a *assets.Asset, ok bool, err error) {
	b.mu.Lock()
	e, held := b.remote[req.SessionID]
	b.mu.Unlock()
	if !held {
		return nil, false, nil
	}
	data, _ := json.Marshal(assetRequest{Session: req.SessionID, URL: req.URL, PageURL: req.PageURL, Header: req.Header}) // plain data
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := b.nc.RequestWithContext(ctx, nodeSubject(e.Node, "asset"), data)
	if err != nil {
		return nil, true, fmt.Errorf("asking node %s for the asset: %w", e.Node, err)
	}
	var reply assetReply
	if err := json.Unmarshal([]byte(resp.Header.Get(hdrAsset)), &reply); err != nil {
		return nil, true, fmt.Errorf("node %s answered the asset request with no metadata", e.Node)
	}
	if reply.Error != "" {
		if reply.NotAllowed {
			return nil, true, fmt.Errorf("%w (node %s): %s", assets.ErrNotAllowed, e.Node, reply.Error)
		}
		return nil, true, fmt.Errorf("node %s: %s", e.Node, reply.Error)
	}
	sum := sha256.Sum256(resp.Data)
	return &assets.Asset{URL: reply.URL, Status: reply.Status, Header: reply.Header, Body: resp.Data, Hash: hex.EncodeToString(sum[:])}, true, nil
}
