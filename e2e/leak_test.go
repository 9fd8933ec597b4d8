package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"github.com/chromedp/chromedp"
	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/proto"

	"github.com/cobrowse/cobrowse/session"
)

// The leak corpus: pages in testdata/leak seeded with secrets in every place
// the server's Redactor covers, visited in real Chromium through cobrowse
// with the policy testdata/leak/policy.yaml, while an agent watches. The
// visitor script applies only its built-in masking (passwords, card fields),
// so everything else reaches the server, and the Redactor is the only thing
// between the page and the agent.

// The pages the visitor opens, in this order.
const (
	leakProfilePath = "/account/profile?email=query.alice@example.com&plan=gold"
	leakDynamicPath = "/account/dynamic"
	leakFormsPath   = "/account/forms"
	leakAdminPath   = "/admin/panel?user=admin.query.nia@example.com"
	leakHelpPath    = "/help?contact=help.query%40example.com"
)

// leakSecret is one value that no agent may ever see.
type leakSecret struct {
	value string
	page  string // the page path it is on
	how   string // where on the page, for failure messages
	// clientMasked: the visitor script masks it before it leaves the
	// browser, so it need not appear in the visitor's own traffic.
	clientMasked bool
}

// leakSecrets are all the secrets of the corpus. Each one must appear in
// the visitor's traffic (else the test would prove nothing about the
// server) and in nothing an agent receives.
var leakSecrets = []leakSecret{
	// profile.html: static content.
	{value: "query.alice@example.com", page: "/account/profile", how: "page URL query string (email detector)"},
	{value: "title.mira@example.com", page: "/account/profile", how: "<title> (email detector)"},
	{value: "css.dora@example.com", page: "/account/profile", how: `<style> content: "…" (email detector)`},
	{value: "3782 822463 10005", page: "/account/profile", how: `<style> content: '…' (card_number detector, Amex)`},
	{value: "Mira Quintessa Holloway", page: "/account/profile", how: "text under mask #holder"},
	{value: "Masked-Text-Kappa-5821", page: "/account/profile", how: "text under mask .secret"},
	{value: "Velvet-Otter-3392", page: "/account/profile", how: "text under mask [data-private]"},
	{value: "Split-Alpha", page: "/account/profile", how: "first <span> of a secret split in two, under mask"},
	{value: "Omega-7730", page: "/account/profile", how: "second <span> of a secret split in two, under mask"},
	{value: "comment.frank@example.com", page: "/account/profile", how: "HTML comment (email detector)"},
	{value: "Masked-Value-Juniper", page: "/account/profile", how: "value attribute under mask"},
	{value: "Masked-Placeholder-Lupin", page: "/account/profile", how: "placeholder under mask"},
	{value: "Masked-Title-Garnet", page: "/account/profile", how: "title attribute under mask"},
	{value: "Masked-Hover-Tapir", page: "/account/profile", how: "text of a titled span under mask"},
	{value: "Masked-Alt-Cobalt", page: "/account/profile", how: "img alt under mask"},
	{value: "Masked-Src-Query-Ember", page: "/account/profile", how: "img src query value under mask"},
	{value: "Masked-Aria-Saffron", page: "/account/profile", how: "aria-label under mask"},
	{value: "Masked-Button-Label-Rook", page: "/account/profile", how: "button text under mask"},
	{value: "Masked-Data-Hemlock", page: "/account/profile", how: "data-* attribute under mask"},
	{value: "Masked-Data-Text-Ocelot", page: "/account/profile", how: "text of a data-* span under mask"},
	{value: "Masked-Href-Token-Pylon", page: "/account/profile", how: "href query value under mask"},
	{value: "Masked-Fragment-Zinnia", page: "/account/profile", how: "href fragment under mask"},
	{value: "Masked-Link-Text-Vole", page: "/account/profile", how: "link text under mask"},
	{value: "Masked-Font-Quokka", page: "/account/profile", how: "CSS string in a style attribute under mask"},
	{value: "Masked-Styled-Text-Ferret", page: "/account/profile", how: "text of a styled span under mask"},
	{value: "Masked-Option-Value-Mango", page: "/account/profile", how: "<option value> / select value under mask"},
	{value: "Masked-Option-Text-Papaya", page: "/account/profile", how: "<option> text under mask"},
	{value: "Masked-Comment-Walrus", page: "/account/profile", how: "HTML comment under mask"},
	{value: "078-05-1120", page: "/account/profile", how: "text in remove #ssn-block"},
	{value: "Removed-Block-Marigold", page: "/account/profile", how: "text in remove #ssn-block"},
	{value: "Removed-Title-Osprey", page: "/account/profile", how: "title attribute of remove .internal-notes"},
	{value: "Removed-Notes-Tamarind", page: "/account/profile", how: "text in remove .internal-notes"},
	{value: "4111 1111 1111 1111", page: "/account/profile", how: "plain text (card_number detector)"},
	{value: "GB82 WEST 1234 5698 7654 32", page: "/account/profile", how: "plain text (iban detector)"},
	{value: "123-45-6789", page: "/account/profile", how: "plain text (ssn detector)"},
	{value: "text.bob@example.org", page: "/account/profile", how: "plain text (email detector)"},
	{value: "(415) 555-2671", page: "/account/profile", how: "plain text (phone detector)"},
	{value: "ORD-55501234", page: "/account/profile", how: "plain text (custom order_id detector)"},
	{value: "DE89 3704 0044 0532 0130 00", page: "/account/profile", how: "value attribute of a text input (iban detector)"},
	{value: "placeholder.pat@example.com", page: "/account/profile", how: "placeholder (email detector)"},
	{value: "+49 30 1234567", page: "/account/profile", how: "title attribute (phone detector)"},
	{value: "5555 5555 5555 4444", page: "/account/profile", how: "img alt (card_number detector)"},
	{value: "4012888888881881", page: "/account/profile", how: "img src query value (card_number detector)"},
	{value: "457-55-5462", page: "/account/profile", how: "aria-label (ssn detector)"},
	{value: "219-09-9999", page: "/account/profile", how: "href query value (ssn detector)"},
	{value: "ORD-20240117", page: "/account/profile", how: "data-* attribute (custom order_id detector)"},
	{value: "href.carol@example.com", page: "/account/profile", how: "href query value, percent-encoded as a form would (email detector)"},
	{value: "5200 8282 8282 8210", page: "/account/profile", how: "href query value, spaces as '+' as a form would (card_number detector)"},
	{value: "srcset.quinn@example.com", page: "/account/profile", how: "img srcset query value (email detector)"},
	{value: "style.erin@example.com", page: "/account/profile", how: "CSS string in a style attribute (email detector)"},
	{value: "536-22-8472", page: "/account/profile", how: "<textarea> content (ssn detector)"},
	{value: "Hidden-Csrf-Token-Xylo", page: "/account/profile", how: "value of an <input type=hidden>"},
	{value: "prefilled.gina@example.com", page: "/account/profile", how: "value of an <input type=email>"},
	{value: "Tel-Prefill-Marmot-4417", page: "/account/profile", how: "value of an <input type=tel>"},
	{value: "6011111111111117", page: "/account/profile", how: "value of an autocomplete=cc-number input", clientMasked: true},

	// dynamic.html + dynamic.js: changes after load.
	{value: "5105 1051 0510 5100", page: "/account/dynamic", how: "plain text inserted by script (card_number detector)"},
	{value: "late.hank@example.com", page: "/account/dynamic", how: "plain text inserted by script (email detector)"},
	{value: "late.attr.ivy@example.com", page: "/account/dynamic", how: "data-* of an element inserted by script (email detector)"},
	{value: "030 1234567", page: "/account/dynamic", how: "title of an element inserted by script (phone detector)"},
	{value: "Late-Masked-Insert-Gecko", page: "/account/dynamic", how: "text of a masked element inserted by script"},
	{value: "Late-Masked-Aria-Dingo", page: "/account/dynamic", how: "aria-label of a masked element inserted by script"},
	{value: "SameTask-Moved-Secret-Ibex", page: "/account/dynamic", how: "node inserted in plain and moved under mask in the same task"},
	{value: "NL91 ABNA 0417 1643 00", page: "/account/dynamic", how: "plain text changed later (iban detector)"},
	{value: "status.title.kai@example.com", page: "/account/dynamic", how: "title attribute set later (email detector)"},
	{value: "Initial-Masked-Status-Perch", page: "/account/dynamic", how: "masked text before a change"},
	{value: "Changed-Masked-Status-Tern", page: "/account/dynamic", how: "masked text changed later"},
	{value: "Changed-Masked-Aria-Newt", page: "/account/dynamic", how: "aria-label of a masked element set later"},
	{value: "Mover-Secret-While-Masked-Lynx", page: "/account/dynamic", how: "text of a node moved under mask, written while there"},
	{value: "Mover-Title-Secret-Puffin", page: "/account/dynamic", how: "title of a node moved under mask, set while there"},
	{value: "Toggler-Secret-Heron-404", page: "/account/dynamic", how: "text written while a class toggle made the element masked"},
	{value: "Toggler-Data-Secret-Moth", page: "/account/dynamic", how: "data-* set while a class toggle made the element masked"},
	{value: "SameTask-Toggle-Secret-Okapi", page: "/account/dynamic", how: "text written in the same task as the class that masks it"},
	{value: "4556 7375", page: "/account/dynamic", how: "first <span> of a card number split in two, under mask"},
	{value: "8689 9855", page: "/account/dynamic", how: "second <span> of a card number split in two, added later under mask"},
	{value: "Removed-Late-Insert-Bison", page: "/account/dynamic", how: "text inserted later into a remove box"},
	{value: "Removed-After-Toggle-Yak", page: "/account/dynamic", how: "text written after a class toggle made the element removed"},
	{value: "Removed-Child-Title-Emu", page: "/account/dynamic", how: "title of a child added to an element removed by a class toggle"},
	{value: "Removed-Child-Text-Kudu", page: "/account/dynamic", how: "text of a child added to an element removed by a class toggle"},
	{value: "late.css.jill@example.com", page: "/account/dynamic", how: "<style> inserted later (email detector)"},
	{value: "6011 0009 9013 9424", page: "/account/dynamic", how: "CSSOM insertRule content string (card_number detector)"},
	{value: "title.late.zoe@example.com", page: "/account/dynamic", how: "document.title set by script (email detector)"},

	// forms.html: values typed by the visitor.
	{value: "Typed-Masked-Nick-Jaguar", page: "/account/forms", how: "typed into a text field under mask"},
	{value: "typed.kim@example.net", page: "/account/forms", how: "typed into an <input type=email>"},
	{value: "+1 212 555 0147", page: "/account/forms", how: "typed into an <input type=tel>"},
	{value: "4242 4242 4242 4242", page: "/account/forms", how: "typed into a plain text field (card_number detector)"},
	{value: "601-44-3829", page: "/account/forms", how: "typed into a plain <textarea> (ssn detector)"},

	// admin.html: block_page.
	{value: "admin.query.nia@example.com", page: "/admin/panel", how: "page URL query string of a blocked page (email detector)"},
	{value: "admin.title.owen@example.com", page: "/admin/panel", how: "<title> of a blocked page"},
	{value: "Admin console of", page: "/admin/panel", how: "<title> text of a blocked page (the dashboard must say it is hidden)"},
	{value: "Admin-Blocked-Heading-Plover", page: "/admin/panel", how: "text of a blocked page"},
	{value: "Admin-Blocked-Text-Walnut", page: "/admin/panel", how: "text of a blocked page"},
	{value: "3530 1113 3330 0000", page: "/admin/panel", how: "card number on a blocked page"},
	{value: "Admin-Blocked-Value-Fennel", page: "/admin/panel", how: "value attribute on a blocked page"},
	{value: "Admin-Typed-Secret-Rhubarb", page: "/admin/panel", how: "typed on a blocked page"},
	{value: "Admin-Late-Secret-Quince", page: "/admin/panel", how: "inserted by script on a blocked page"},

	// help.html: detectors only.
	{value: "help.leo@example.com", page: "/help", how: "plain text on a page no rule matches (email detector)"},
	{value: "help.query@example.com", page: "/help", how: "page URL query string, percent-encoded as a GET form writes it (email detector)"},
}

// leakPublic is the public text of each page: it must reach the agent, so
// that the test cannot pass by the agent getting nothing.
var leakPublic = map[string][]string{
	"/account/profile": {"Public profile heading", "Public: shipping is free on orders over 50 euros.", "Public help link", "Public footer text."},
	"/account/dynamic": {"Public dynamic heading", "Mover public again", "Toggler public again", "Public dynamic footer."},
	"/account/forms":   {"Public forms heading", "Typed public words", "Public forms footer."},
	"/admin/panel":     {"Hidden by policy"},
	"/help":            {"Public help heading", "Public help footer."},
}

// TestNoSecretReachesAnAgent is the leak corpus: a visitor goes through
// pages holding secrets in every place the policy covers (static, changed
// by script, typed), an agent watches the live view and the dashboard, and
// nothing the agent receives (WebSocket messages, server-sent events, the
// REST API, the replayed DOM) contains a secret in any encoding, while the
// public text does arrive and the masked places show as '*' runs.
func TestNoSecretReachesAnAgent(t *testing.T) {
	lt := &leakTest{t: t}
	// With --render, the server's own Chromium replays the session too, and
	// fetches what the replayed pages reference: those requests are an
	// agent-facing channel as well.
	lt.c, lt.serverFetches = startLeakServer(t, "--render")
	origin := strings.TrimSuffix(lt.c.visitorURL, "/")

	visitor := visitorBrowser(t).WithPanic(func(v any) { t.Helper(); lt.fatalf("visitor browser: %v", v) })
	lt.page = visitor.MustPage("").Timeout(60 * time.Second)
	// The visitor script is kept from fetching the page's client policy, as
	// if it were an old or tampered copy: it then sends everything but its
	// built-in masking, and everything else is up to the server, which is
	// what this test is about (TestVisitorScriptMasksFirst covers the
	// script's own masking).
	router := lt.page.HijackRequests()
	router.MustAdd("*/__cobrowse/policy*", func(h *rod.Hijack) { h.Response.Fail(proto.NetworkErrorReasonBlockedByClient) })
	go router.Run()
	t.Cleanup(router.MustStop)
	lt.visitorSent = captureVisitorTraffic(t, lt.page)
	lt.wire = captureVisitorWire(lt.page)

	// Profile: every static place.
	lt.page.MustNavigate(origin + leakProfilePath).MustWaitLoad()
	var sessions []session.Info
	eventually(t, 10*time.Second, "the visitor's session is listed", func() string {
		lt.c.api(t, "/api/sessions", &sessions)
		if len(sessions) != 1 || !strings.Contains(sessions[0].URL, "/account/profile") {
			return fmt.Sprintf("sessions = %+v", sessions)
		}
		return ""
	})
	lt.sessionID = sessions[0].ID
	watchRender(t, lt.c, lt.sessionID)

	// The agent: the dashboard in one tab (server-sent events), the live
	// session view in another (the agent WebSocket).
	agent := agentBrowser(t)
	lt.dashboard = agent
	lt.dashboardTraffic = captureAgentTraffic(agent)
	if err := chromedp.Do(agent,
		chromedp.Navigate(lt.c.agentURL+"/login?token="+lt.c.token),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-session="`+lt.sessionID+`"]`)),
	); err != nil {
		lt.fatalf("agent dashboard: %v", err)
	}
	view, cancelView := chromedp.NewContext(agent)
	t.Cleanup(cancelView) // before agentBrowser's cleanup, which stops the browser
	if err := chromedp.Do(view); err != nil {
		lt.fatalf("opening the agent's session tab: %v", err)
	}
	lt.view = view
	lt.viewTraffic = captureAgentTraffic(view)
	if err := chromedp.Do(view, chromedp.Navigate(lt.c.agentURL+"/sessions/"+lt.sessionID)); err != nil {
		lt.fatalf("agent session view: %v", err)
	}

	lt.expectPage("/account/profile", origin+"/account/profile?email="+stars("query.alice@example.com")+"&plan=gold",
		"Profile of "+stars("title.mira@example.com"),
		eq("#public-heading", "text", "Public profile heading"),
		eq("document", "title", "Profile of "+stars("title.mira@example.com")),
		has("document", "html", `content: "Badge `+stars("css.dora@example.com")+`"`),
		has("document", "html", `content: "Card **** ****** *****"`),
		// mask
		eq("#holder", "text", stars("Mira Quintessa Holloway")),
		eq("#masked-text", "text", stars("Masked-Text-Kappa-5821")),
		eq("#private-note", "text", stars("Private note: Velvet-Otter-3392")),
		eq("#split", "text", stars("Split-Alpha-Omega-7730")),
		eq("#m-value", "value", stars("Masked-Value-Juniper")),
		eq("#m-placeholder", "attr:placeholder", stars("Masked-Placeholder-Lupin")),
		eq("#m-title", "attr:title", stars("Masked-Title-Garnet")),
		eq("#m-title", "text", stars("Masked-Hover-Tapir")),
		eq("#m-img", "attr:alt", stars("Masked-Alt-Cobalt")),
		has("#m-img", "attr:src", "/img/pixel.png?owner="+stars("Masked-Src-Query-Ember")),
		eq("#m-aria", "attr:aria-label", stars("Masked-Aria-Saffron")),
		eq("#m-aria", "text", stars("Masked-Button-Label-Rook")),
		eq("#m-data", "attr:data-customer", stars("Masked-Data-Hemlock")),
		eq("#m-data", "text", stars("Masked-Data-Text-Ocelot")),
		has("#m-href", "attr:href", "/account/statement?token="+stars("Masked-Href-Token-Pylon")+"#"+stars("Masked-Fragment-Zinnia")),
		eq("#m-href", "text", stars("Masked-Link-Text-Vole")),
		has("#m-style", "attr:style", "'"+stars("Masked-Font-Quokka")+"'"),
		eq("#m-style", "text", stars("Masked-Styled-Text-Ferret")),
		eq("#m-select option", "attr:value", stars("Masked-Option-Value-Mango")),
		eq("#m-select option", "text", stars("Masked-Option-Text-Papaya")),
		has("#masked-attrs", "inner", "<!-- "+stars("Masked-Comment-Walrus")+" -->"),
		has("document", "html", "<!-- comment holds "+stars("comment.frank@example.com")+" -->"),
		// remove
		eq("#ssn-block", "inner", ""),
		eq("#notes", "inner", ""),
		absent("#notes", "attr:title"),
		// detectors
		eq("#d-card", "text", "Your card **** **** **** **** is on file."),
		eq("#d-iban", "text", "Payout to "+stars("GB82 WEST 1234 5698 7654 32")+" monthly."),
		eq("#d-ssn", "text", "SSN *********** verified."),
		eq("#d-email", "text", "Write to "+stars("text.bob@example.org")+" any time."),
		eq("#d-phone", "text", "Call ***** ******** on weekdays."),
		eq("#d-order", "text", "Order ************ has shipped."),
		eq("#d-value", "value", "IBAN "+stars("DE89 3704 0044 0532 0130 00")),
		eq("#d-placeholder", "attr:placeholder", "e.g. "+stars("placeholder.pat@example.com")),
		eq("#d-title", "attr:title", "Call *** ** *******"),
		eq("#d-img", "attr:alt", "Card **** **** **** ****"),
		has("#d-img", "attr:src", "/img/pixel.png?card="+stars("4012888888881881")),
		eq("#d-aria", "attr:aria-label", "SSN ***********"),
		has("#d-aria", "attr:href", "/account/help?ssn=***********"),
		eq("#d-data", "attr:data-order", "************"),
		eq("#d-href", "text", "Public contact link"),
		eq("#d-href-card", "text", "Public pay link"),
		has("#d-srcset", "attr:srcset", "/img/pixel.png?u="+stars("srcset.quinn@example.com")+" 1x"),
		eq("#d-textarea", "value", "Note: SSN *********** on the textarea."),
		// sensitive fields
		eq("#f-hidden", "value", stars("Hidden-Csrf-Token-Xylo")),
		eq("#f-email", "value", stars("prefilled.gina@example.com")),
		eq("#f-tel", "value", stars("Tel-Prefill-Marmot-4417")),
		eq("#f-cc", "value", stars("6011111111111117")),
		eq("#public-footer", "text", "Public footer text."),
	)

	// Dynamic: secrets that appear after load.
	lt.page.MustNavigate(origin + leakDynamicPath).MustWaitLoad()
	lt.expectPage("/account/dynamic", origin+"/account/dynamic", "Dynamic account page",
		eq("#public-heading", "text", "Public dynamic heading"),
		eq("#tick", "text", "step 0"),
		eq("#masked-status", "text", stars("Initial-Masked-Status-Perch")),
		eq("#split-card", "text", "**** ****"),
	)
	for _, step := range []struct {
		name   string
		expect []replayExpect
	}{
		{"insert", []replayExpect{
			eq("#late-text", "text", "Late card **** **** **** **** and "+stars("late.hank@example.com")+" here"),
			eq("#late-attr", "attr:data-contact", stars("late.attr.ivy@example.com")),
			eq("#late-attr", "attr:title", "Fax *** *******"),
			eq("#late-attr", "text", "Late public attribute holder"),
			eq("#late-masked", "text", stars("Late-Masked-Insert-Gecko")),
			eq("#late-masked", "attr:aria-label", stars("Late-Masked-Aria-Dingo")),
			eq("#masked-box #same-task", "text", stars("SameTask-Moved-Secret-Ibex")),
		}},
		{"changeText", []replayExpect{
			eq("#status", "text", "Status: payout to "+stars("NL91 ABNA 0417 1643 00")+" now"),
			eq("#status", "attr:title", "Reach me at "+stars("status.title.kai@example.com")),
			eq("#masked-status", "text", stars("Changed-Masked-Status-Tern")),
			eq("#masked-status", "attr:aria-label", stars("Changed-Masked-Aria-Newt")),
		}},
		{"moveIn", []replayExpect{eq("#masked-box #mover", "text", stars("Mover starts public"))}},
		{"secretWhileMasked", []replayExpect{
			eq("#masked-box #mover", "text", stars("Mover-Secret-While-Masked-Lynx")),
			eq("#masked-box #mover", "attr:title", stars("Mover-Title-Secret-Puffin")),
		}},
		{"moveOut", []replayExpect{
			eq("#plain-box #mover", "text", "Mover public again"),
			absent("#plain-box #mover", "attr:title"),
		}},
		{"toggleOn", []replayExpect{eq("#toggler", "text", stars("Toggler starts public"))}},
		{"secretWhileToggled", []replayExpect{
			eq("#toggler", "text", stars("Toggler-Secret-Heron-404")),
			eq("#toggler", "attr:data-note", stars("Toggler-Data-Secret-Moth")),
		}},
		{"toggleOff", []replayExpect{
			eq("#toggler", "text", "Toggler public again"),
			absent("#toggler", "attr:data-note"),
		}},
		{"toggleWithSecret", []replayExpect{eq("#toggler2", "text", stars("SameTask-Toggle-Secret-Okapi"))}},
		{"split", []replayExpect{eq("#split-card", "text", "**** **** **** ****")}},
		{"removed", []replayExpect{
			eq("#dyn-removed", "inner", ""),
			eq("#becomes-removed", "inner", ""),
		}},
		{"removedLater", []replayExpect{eq("#becomes-removed", "inner", "")}},
		// The agent's replay loses a <style> added later (see
		// sentToAgent), so its masked rule is looked for in the traffic.
		{"css", []replayExpect{sentToAgent(`.late::after { content: "` + stars("late.css.jill@example.com") + `"; }`)}},
		{"title", []replayExpect{eq("document", "title", "Dynamic for "+stars("title.late.zoe@example.com"))}},
		{"cssRule", []replayExpect{has("document", "css", `content: "Rule **** **** **** ****"`)}},
	} {
		lt.step(step.name, step.expect...)
	}
	lt.waitInfo("/account/dynamic", origin+"/account/dynamic", "Dynamic for "+stars("title.late.zoe@example.com"))
	lt.collect("/account/dynamic")

	// Forms: values the visitor types.
	lt.page.MustNavigate(origin + leakFormsPath).MustWaitLoad()
	lt.expectPage("/account/forms", origin+"/account/forms", "Account forms",
		eq("#public-heading", "text", "Public forms heading"))
	typed := []struct{ field, text, want string }{
		{"#nick", "Typed-Masked-Nick-Jaguar", stars("Typed-Masked-Nick-Jaguar")},
		{"#mail", "typed.kim@example.net", stars("typed.kim@example.net")},
		{"#phone", "+1 212 555 0147", stars("+1 212 555 0147")},
		{"#note", "Card 4242 4242 4242 4242", "Card **** **** **** ****"},
		{"#bio", "SSN 601-44-3829 for taxes", "SSN *********** for taxes"},
		{"#public-field", "Typed public words", "Typed public words"},
	}
	var typedExpect []replayExpect
	for _, f := range typed {
		lt.page.MustElement(f.field).MustInput(f.text)
		typedExpect = append(typedExpect, eq(f.field, "value", f.want))
	}
	lt.waitReplay("the typed values reach the agent view", 5*time.Second, typedExpect...)
	lt.collect("/account/forms")

	// Admin: a blocked page, also what happens on it after load.
	lt.page.MustNavigate(origin + leakAdminPath).MustWaitLoad()
	lt.expectPage("/admin/panel", origin+"/admin/panel?user="+stars("admin.query.nia@example.com"), "Hidden by policy",
		eq("body", "text", "Hidden by policy"))
	lt.page.MustElement("#admin-field").MustInput("Admin-Typed-Secret-Rhubarb")
	lt.page.MustEval(`() => { document.getElementById('admin-late').textContent = 'Admin-Late-Secret-Quince'; }`)
	for _, s := range []string{"Admin-Typed-Secret-Rhubarb", "Admin-Late-Secret-Quince"} {
		eventually(t, 5*time.Second, "the server acknowledges the blocked page's "+s, func() string {
			return lt.wire.acked(s)
		})
	}
	lt.waitReplay("the blocked page stays hidden", time.Second, eq("body", "text", "Hidden by policy"))
	lt.collect("/admin/panel")

	// Help: detectors only, and the agent leaves the placeholder.
	lt.page.MustNavigate(origin + leakHelpPath).MustWaitLoad()
	// The page URL's query is checked by the leak scan: the API must show
	// the page, with whatever masking of the address.
	lt.expectPage("/help", origin+"/help?contact=", "Help centre",
		eq("#public-heading", "text", "Public help heading"),
		eq("#d-email", "text", "Mail "+stars("help.leo@example.com")+" for help."),
	)

	if shot, err := chromedp.Run(view, chromedp.CaptureScreenshot()); err == nil {
		saveArtifact(t, "agent-leak-help.png", shot)
	}
	lt.checkCorpus()
	lt.checkVisitorSentSecrets()
	lt.checkPublicTextArrived()
	lt.checkServerLog()
	// The renderer's requests are a channel only if it made some: the
	// profile page's images, whose query strings carry masked secrets.
	fetched := lt.serverFetches.list()
	if !slices.ContainsFunc(fetched, func(uri string) bool { return strings.HasPrefix(uri, "/img/") }) {
		t.Errorf("the rendered view fetched no image from the upstream (requests: %q); the renderer's channel went unchecked", fetched)
	}
	t.Logf("the rendered view made %d requests to the upstream, e.g. %q", len(fetched), fetched[:min(3, len(fetched))])
	// ... and its document was checked only if it shows the page.
	lt.mu.Lock()
	renderedProfile := ""
	for _, src := range lt.snapshots {
		if src.name == "the rendered view's document (on /account/profile)" {
			renderedProfile = src.text
		}
	}
	lt.mu.Unlock()
	if !strings.Contains(renderedProfile, "Public profile heading") {
		t.Errorf("the rendered view's document of the profile lacks its public heading: %.200q", renderedProfile)
	}
	if leaks := lt.leaks(); len(leaks) > 0 {
		t.Errorf("%d secrets reached the agent:\n%s", len(leaks), strings.Join(leaks, "\n"))
	}
}

// leakTest is the state of one run of the corpus.
type leakTest struct {
	t         *testing.T
	c         *cobrowse
	page      *rod.Page
	sessionID string
	steps     int

	visitorSent *frameLog       // frames the visitor's page sent
	wire        *wireLog        // the visitor's frames both ways, in order
	dashboard   context.Context // the agent's dashboard tab
	view        context.Context // the agent's session view tab

	dashboardTraffic, viewTraffic *frameLog
	serverFetches                 *serverSideFetches // the upstream's requests from the renderer

	mu        sync.Mutex
	snapshots []leakSource // API answers and DOMs collected on the way
}

// leakSource is one thing the agent received, named for failure messages.
type leakSource struct {
	name, text string
}

// fatalf reports the leaks found so far (a leak is the likely reason for a
// failed expectation, and the clearest message), then fails.
func (lt *leakTest) fatalf(format string, args ...any) {
	lt.t.Helper()
	if lt.c != nil && lt.sessionID != "" {
		lt.collect("failure")
	}
	if leaks := lt.leaks(); len(leaks) > 0 {
		lt.t.Errorf("%d secrets reached the agent:\n%s", len(leaks), strings.Join(leaks, "\n"))
	}
	lt.t.Fatalf(format, args...)
}

// expectPage waits until the session shows page (its URL and title as
// redacted for agents) and the agent's view meets expect, then collects
// what the agent can fetch about it.
func (lt *leakTest) expectPage(page, wantURL, wantTitle string, expect ...replayExpect) {
	lt.t.Helper()
	lt.waitInfo(page, wantURL, wantTitle)
	lt.waitReplay("the agent view shows "+page, 10*time.Second, expect...)
	lt.collect(page)
}

// waitInfo waits until the API describes the session's page as wantURL
// (or, if wantURL ends with "=", a URL starting with it) and wantTitle.
func (lt *leakTest) waitInfo(page, wantURL, wantTitle string) {
	lt.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var info session.Info
		body := lt.c.rawGET(lt.t, "/api/sessions/"+lt.sessionID)
		err := json.Unmarshal(body, &info)
		urlOK := info.URL == wantURL || strings.HasSuffix(wantURL, "=") && strings.HasPrefix(info.URL, wantURL)
		if err == nil && urlOK && info.Title == wantTitle {
			return
		}
		if time.Now().After(deadline) {
			lt.fatalf("on %s the API describes the session as URL %q, title %q (%v); want %q, %q",
				page, info.URL, info.Title, err, wantURL, wantTitle)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// step runs one step of dynamic.js in the visitor's page and waits for the
// agent's view to show its tick and expect.
func (lt *leakTest) step(name string, expect ...replayExpect) {
	lt.t.Helper()
	lt.steps++
	n := lt.page.MustEval(`name => window.leakSteps[name]()`, name).Int()
	if n != lt.steps {
		lt.fatalf("dynamic step %s returned tick %d, want %d", name, n, lt.steps)
	}
	tick := fmt.Sprintf("step %d", n)
	lt.waitReplay("dynamic step "+name+" reaches the agent view", 5*time.Second,
		append([]replayExpect{eq("#tick", "text", tick)}, expect...)...)
}

// replayExpect is one thing to read in the agent's replayed document and
// what it must be.
type replayExpect struct {
	sel, what string // what: text, value, inner, attr:NAME; for sel "document": title, html, css
	want      string
	contains  bool // want is a substring
	absent    bool // the attribute must be missing
}

func eq(sel, what, want string) replayExpect { return replayExpect{sel: sel, what: what, want: want} }
func has(sel, what, want string) replayExpect {
	return replayExpect{sel: sel, what: what, want: want, contains: true}
}
func absent(sel, what string) replayExpect { return replayExpect{sel: sel, what: what, absent: true} }

// sentToAgent expects want (JSON-escaped) in the session view's WebSocket
// traffic rather than in the replayed document, for what the replay does
// not render: a <style> element added after load. rrweb sends it with no
// children, its CSS in _cssText, and its (empty) text node as an add of
// its own; the Redactor sends the element with that text node inside it
// and the add as well, and the replayer, which puts _cssText into the
// element's first text child, ends with an empty style.
func sentToAgent(want string) replayExpect {
	return replayExpect{sel: "traffic", want: want, contains: true}
}

// readReplay is the JavaScript that reads the probes [sel, what] in the
// replayed document: null for a missing element or attribute. The console
// points the page's resource URLs at its asset route; an attribute is read
// with each such URL turned back into the visitor's URL that it fetches.
const readReplay = `doc => {
  const unroute = v => v && v.replace(/\S*\/api\/sessions\/[^\/\s]+\/asset\?url=([^\s#]*)/g, (m, u) => {
    try { return decodeURIComponent(u); } catch (e) { return m; }
  });
  return PROBES.map(([sel, what]) => {
    if (sel === 'document') {
      if (what === 'title') return doc.title;
      if (what === 'html') return doc.documentElement.outerHTML;
      if (what === 'css') return [...doc.styleSheets].flatMap(s => [...s.cssRules].map(r => r.cssText)).join('\n');
      return null;
    }
    const e = doc.querySelector(sel);
    if (!e) return null;
    if (what === 'text') return e.textContent;
    if (what === 'value') return e.value;
    if (what === 'inner') return e.innerHTML;
    if (what.startsWith('attr:')) return unroute(e.getAttribute(what.slice(5)));
    return null;
  });
}`

// waitReplay waits until the agent's replayed page meets every expectation.
func (lt *leakTest) waitReplay(what string, within time.Duration, expect ...replayExpect) {
	lt.t.Helper()
	probes := make([][2]string, len(expect))
	for i, e := range expect {
		probes[i] = [2]string{e.sel, e.what}
	}
	js, _ := json.Marshal(probes)
	expr := strings.Replace(readReplay, "PROBES", string(js), 1)
	deadline := time.Now().Add(within)
	for {
		got, err := inReplay[[]*string](lt.view, expr)
		if err == nil && len(got) == len(expect) {
			live := lt.viewTraffic.all()
			for i, e := range expect {
				if e.sel == "traffic" {
					j, _ := json.Marshal(e.want)
					got[i] = &e.want
					if !strings.Contains(live, string(j[1:len(j)-1])) {
						missing := "(not in the session view's WebSocket traffic)"
						got[i] = &missing
					}
				}
			}
		}
		var wrong []string
		switch {
		case err != nil:
			wrong = append(wrong, err.Error())
		case len(got) != len(expect):
			wrong = append(wrong, "no replayed document yet")
		default:
			for i, e := range expect {
				if msg := e.check(got[i]); msg != "" {
					wrong = append(wrong, msg)
				}
			}
		}
		if len(wrong) == 0 {
			return
		}
		if time.Now().After(deadline) {
			lt.fatalf("%s: not within %v:\n\t%s", what, within, strings.Join(wrong, "\n\t"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check returns what is wrong with got, or "".
func (e replayExpect) check(got *string) string {
	where := e.sel + " " + e.what
	switch {
	case e.absent && got == nil:
		return ""
	case e.absent:
		return fmt.Sprintf("%s = %q, want none", where, *got)
	case got == nil:
		return fmt.Sprintf("%s is missing, want %q", where, e.want)
	case e.contains && !strings.Contains(*got, e.want):
		return fmt.Sprintf("%s = %q, want it to contain %q", where, excerpt(*got, e.want), e.want)
	case !e.contains && *got != e.want:
		return fmt.Sprintf("%s = %q, want %q", where, *got, e.want)
	}
	return ""
}

// collect records, labelled with page, everything the agent can fetch at
// this moment: the API's answers, and the agent's tabs as rendered.
func (lt *leakTest) collect(page string) {
	t := lt.t
	t.Helper()
	add := func(name, text string) {
		lt.mu.Lock()
		lt.snapshots = append(lt.snapshots, leakSource{name + " (on " + page + ")", text})
		lt.mu.Unlock()
	}
	for _, path := range []string{"/api/sessions", "/api/sessions/" + lt.sessionID, "/api/sessions/" + lt.sessionID + "/events"} {
		add("GET "+path, string(lt.c.rawGET(t, path)))
	}
	// The rendered view of this page: taking it waits for the renderer,
	// whose requests for the page's images are checked like the rest.
	if status, shot := lt.c.agentGET(t, "/api/sessions/"+lt.sessionID+"/screenshot.png"); status != http.StatusOK {
		t.Errorf("the rendered view of %s: %d %s", page, status, shot)
	}
	// ... and the document the server's Chromium built for it.
	if status, doc := lt.c.agentGET(t, "/api/sessions/"+lt.sessionID+"/rendered.html"); status == http.StatusOK {
		add("the rendered view's document", string(doc))
	} else {
		t.Errorf("the rendered view's document of %s: %d %s", page, status, doc)
	}
	if lt.view != nil {
		if doc, err := inReplay[string](lt.view, `doc => doc.documentElement.outerHTML`); err == nil {
			add("the agent's replayed document", doc)
		}
		if doc, err := chromedp.Run(lt.view, chromedp.Evaluate[string](`document.documentElement.outerHTML`)); err == nil {
			add("the agent's session page", doc)
		}
	}
	if lt.dashboard != nil {
		if doc, err := chromedp.Run(lt.dashboard, chromedp.Evaluate[string](`document.documentElement.outerHTML`)); err == nil {
			add("the agent's dashboard", doc)
		}
	}
}

// agentSources returns everything the agent received, one source per
// message or snapshot.
func (lt *leakTest) agentSources() []leakSource {
	var out []leakSource
	for _, l := range []struct {
		name string
		log  *frameLog
	}{{"the session view's WebSocket", lt.viewTraffic}, {"the dashboard's stream", lt.dashboardTraffic}} {
		if l.log == nil {
			continue
		}
		for i, p := range l.log.list() {
			out = append(out, leakSource{fmt.Sprintf("%s, message %d", l.name, i+1), p})
		}
	}
	if lt.serverFetches != nil {
		for _, uri := range lt.serverFetches.list() {
			out = append(out, leakSource{"a request of the rendered view to the upstream", uri})
		}
	}
	lt.mu.Lock()
	out = append(out, lt.snapshots...)
	lt.mu.Unlock()
	return out
}

// leaks returns a line per secret found in what the agent received, with
// where and an excerpt.
func (lt *leakTest) leaks() []string {
	sources := lt.agentSources()
	var out []string
	for _, s := range leakSecrets {
		var found []string
		for _, form := range encodings(s.value) {
			for _, src := range sources {
				if strings.Contains(src.text, form) {
					found = append(found, fmt.Sprintf("\t\tin %s as %q: …%s…", src.name, form, excerpt(src.text, form)))
				}
			}
		}
		if len(found) == 0 {
			continue
		}
		more := ""
		if len(found) > 3 {
			more = fmt.Sprintf("\n\t\t(and %d more places)", len(found)-3)
			found = found[:3]
		}
		out = append(out, fmt.Sprintf("\tLEAK %q (%s, on %s):\n%s%s", s.value, s.how, s.page, strings.Join(found, "\n"), more))
	}
	return out
}

// encodings returns the forms in which secret s would be recognisable: as
// it is, URL-encoded (query and path), JSON-escaped and HTML-escaped.
func encodings(s string) []string {
	forms := []string{s}
	add := func(f string) {
		if !slices.Contains(forms, f) {
			forms = append(forms, f)
		}
	}
	add(url.QueryEscape(s))
	add(url.PathEscape(s))
	j, _ := json.Marshal(s)
	add(string(j[1 : len(j)-1]))
	add(html.EscapeString(s))
	return forms
}

// excerpt returns up to 120 characters of text around the first sub.
func excerpt(text, sub string) string {
	i := strings.Index(text, sub)
	if i < 0 {
		if len(text) > 240 {
			return text[:240] + "…"
		}
		return text
	}
	from, to := max(0, i-120), min(len(text), i+len(sub)+120)
	return strings.ToValidUTF8(text[from:to], "�")
}

// checkCorpus checks that the secrets list matches the fixtures: each
// secret not typed by the test or in a URL it visits is in a fixture file.
func (lt *leakTest) checkCorpus() {
	var all bytes.Buffer
	for _, f := range []string{"profile.html", "dynamic.html", "dynamic.js", "forms.html", "admin.html", "help.html"} {
		b, err := os.ReadFile(filepath.Join("testdata", "leak", f))
		if err != nil {
			lt.t.Fatal(err)
		}
		all.Write(b)
	}
	all.WriteString(strings.Join([]string{leakProfilePath, leakAdminPath, leakHelpPath,
		"Typed-Masked-Nick-Jaguar", "typed.kim@example.net", "+1 212 555 0147", "4242 4242 4242 4242", "601-44-3829",
		"Admin-Typed-Secret-Rhubarb", "Admin-Late-Secret-Quince"}, "\n"))
	for _, s := range leakSecrets {
		if !slices.ContainsFunc(encodings(s.value), func(f string) bool { return bytes.Contains(all.Bytes(), []byte(f)) }) {
			lt.t.Errorf("the secret %q (%s) is in no fixture: the corpus and the list disagree", s.value, s.how)
		}
	}
}

// checkVisitorSentSecrets checks that every secret the visitor script does
// not mask itself left the visitor's browser: else the test would prove
// nothing about the server.
func (lt *leakTest) checkVisitorSentSecrets() {
	sent := lt.visitorSent.all()
	for _, s := range leakSecrets {
		if s.clientMasked {
			continue
		}
		if !slices.ContainsFunc(encodings(s.value), func(f string) bool { return strings.Contains(sent, f) }) {
			lt.t.Errorf("the visitor never sent the secret %q (%s on %s): the case tests nothing on the server", s.value, s.how, s.page)
		}
	}
}

// checkPublicTextArrived checks the positive controls: each page's public
// text reached the agent's live view and the /events export of that page.
func (lt *leakTest) checkPublicTextArrived() {
	live := lt.viewTraffic.all()
	for page, texts := range leakPublic {
		var export string
		lt.mu.Lock()
		for _, s := range lt.snapshots {
			if strings.HasPrefix(s.name, "GET /api/sessions/"+lt.sessionID+"/events (on "+page+")") {
				export += s.text
			}
		}
		lt.mu.Unlock()
		for _, text := range texts {
			j, _ := json.Marshal(text)
			form := string(j[1 : len(j)-1])
			if !strings.Contains(live, form) {
				lt.t.Errorf("the public text %q of %s never reached the agent's live view: the capture or the replay is broken", text, page)
			}
			if export == "" || !strings.Contains(export, form) {
				lt.t.Errorf("the public text %q of %s is not in the /events export of that page", text, page)
			}
		}
	}
}

// stars masks s as the policy does: every character but white space
// becomes '*'.
func stars(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return r
		}
		return '*'
	}, s)
}

// list returns a copy of the payloads.
func (l *frameLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.payloads)
}

// wireLog is a visitor page's WebSocket frames, sent and received, in order.
type wireLog struct {
	mu     sync.Mutex
	frames []wireFrame
}

type wireFrame struct {
	sent bool
	data string
}

// captureVisitorWire records the frames of page's WebSockets both ways.
// The page's Network domain must be enabled (captureVisitorTraffic does).
func captureVisitorWire(page *rod.Page) *wireLog {
	w := &wireLog{}
	add := func(sent bool, data string) {
		w.mu.Lock()
		w.frames = append(w.frames, wireFrame{sent, data})
		w.mu.Unlock()
	}
	go page.EachEvent(func(e *proto.NetworkWebSocketFrameSent) {
		add(true, e.Response.PayloadData)
	}, func(e *proto.NetworkWebSocketFrameReceived) {
		add(false, e.Response.PayloadData)
	})()
	return w
}

// acked returns "" once a batch holding sub was sent and the server
// acknowledged it (it acknowledges a batch after the hub has taken it), or
// what is missing.
func (w *wireLog) acked(sub string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	sentAt, seq := -1, 0
	for i, f := range w.frames {
		var batch struct{ Seq int }
		if f.sent && strings.Contains(f.data, sub) && json.Unmarshal([]byte(f.data), &batch) == nil && batch.Seq > 0 {
			sentAt, seq = i, batch.Seq
		}
	}
	if sentAt < 0 {
		return fmt.Sprintf("no batch holding %q sent yet", sub)
	}
	for _, f := range w.frames[sentAt+1:] {
		var ack struct {
			Type string
			Seq  int
		}
		if !f.sent && json.Unmarshal([]byte(f.data), &ack) == nil && ack.Type == "ack" && ack.Seq == seq {
			return ""
		}
	}
	return fmt.Sprintf("batch %d (holding %q) not acknowledged yet", seq, sub)
}

// leakUpstream serves the corpus on 127.0.0.1.
// startLeakServer runs cobrowse in front of leakUpstream with the corpus's
// policy (copied to a temporary directory, which the server watches) and
// extraArgs. It also returns the requests the upstream got from the server
// itself (not from a browser).
func startLeakServer(t *testing.T, extraArgs ...string) (*cobrowse, *serverSideFetches) {
	t.Helper()
	upstream, fetches := leakUpstream(t)
	policyFile := filepath.Join(t.TempDir(), "policy.yaml")
	policyYAML, err := os.ReadFile(filepath.Join("testdata", "leak", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(policyFile, policyYAML, 0o644); err != nil {
		t.Fatal(err)
	}
	return startCobrowse(t, append([]string{"serve", "--upstream", upstream.URL, "--policy", policyFile}, extraArgs...)...), fetches
}

func leakUpstream(t *testing.T) (*httptest.Server, *serverSideFetches) {
	t.Helper()
	files := map[string]string{
		"/account/profile":    "profile.html",
		"/account/dynamic":    "dynamic.html",
		"/account/dynamic.js": "dynamic.js",
		"/account/forms":      "forms.html",
		"/admin/panel":        "admin.html",
		"/help":               "help.html",
	}
	bodies := make(map[string][]byte, len(files))
	for path, name := range files {
		b, err := os.ReadFile(filepath.Join("testdata", "leak", name))
		if err != nil {
			t.Fatal(err)
		}
		bodies[path] = b
	}
	var pixel bytes.Buffer
	png.Encode(&pixel, image.NewGray(image.Rect(0, 0, 1, 1)))
	fetches := &serverSideFetches{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.note(r)
		w.Header().Set("Cache-Control", "no-store")
		if strings.HasPrefix(r.URL.Path, "/img/") {
			w.Header().Set("Content-Type", "image/png")
			w.Write(pixel.Bytes())
			return
		}
		body, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		ctype := "text/html; charset=utf-8"
		if strings.HasSuffix(r.URL.Path, ".js") {
			ctype = "text/javascript; charset=utf-8"
		}
		w.Header().Set("Content-Type", ctype)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv, fetches
}
