package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-rod/rod"
	"github.com/go-rod/rod/lib/input"
)

// controlApp serves the React-style controlled form of testdata/control.
func controlApp(t *testing.T) *httptest.Server {
	t.Helper()
	page, err := os.ReadFile(filepath.Join("testdata", "control", "app.html"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// clickReplayed clicks, in the agent's console, the middle of the replayed
// element sel (DOM mode: the replay's iframe, scaled to fit).
func clickReplayed(t *testing.T, agent context.Context, sel string) {
	t.Helper()
	pt, err := chromedp.Run(agent, chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => {
		const f = document.querySelector('#stage iframe');
		const r = f.contentDocument.querySelector(%q).getBoundingClientRect();
		const fr = f.getBoundingClientRect();
		const scale = fr.width / f.offsetWidth;
		return [fr.left + (r.left + r.width / 2) * scale, fr.top + (r.top + r.height / 2) * scale];
	})()`, sel)))
	if err != nil {
		t.Fatalf("finding %s in the replay: %v", sel, err)
	}
	if err := chromedp.Do(agent, chromedp.MouseClickXY(pt[0], pt[1])); err != nil {
		t.Fatal(err)
	}
}

func visitorText(page *rod.Page, sel string) string {
	return page.MustElement(sel).MustText()
}

func TestRemoteControl(t *testing.T) {
	app := controlApp(t)
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(policy, []byte("version: 1\nrules:\n  - name: payments\n    pages: [\"/**\"]\n    no_control: [\"button.pay\"]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCobrowse(t, "serve", "--upstream", app.URL, "--policy", policy)
	page := visitorBrowser(t).MustPage("").Timeout(60 * time.Second)
	page.MustNavigate(c.visitorURL + "app").MustWaitLoad()
	page.MustElement("#greeting")
	id := waitForSession(t, c)

	agent := agentBrowser(t)
	if err := chromedp.Do(agent,
		chromedp.Navigate(c.agentURL+"/login?token="+c.token),
		chromedp.Evaluate[chromedp.Void](`localStorage.setItem('cobrowse.agentName', 'Erin')`),
		chromedp.Navigate(c.agentURL+"/sessions/"+id),
		chromedp.WaitVisible(chromedp.CSS(`#stage iframe`)),
		chromedp.WaitEnabled(chromedp.CSS(`#control`)),
		chromedp.Click(chromedp.CSS(`#control`)),
	); err != nil {
		t.Fatalf("agent asking for control: %v", err)
	}
	waitForPanel(t, page, 10*time.Second, "the control question on the visitor's page")
	time.Sleep(300 * time.Millisecond) // the question takes focus
	page.Keyboard.MustType(input.Enter)
	eventually(t, 10*time.Second, "the console in control", func() string {
		label, _ := chromedp.Run(agent, chromedp.Text(chromedp.CSS(`#control`)))
		if label != "Release control" {
			return fmt.Sprintf("control button %q", label)
		}
		return ""
	})

	// Typing into the controlled input changes the app's state.
	clickReplayed(t, agent, "#name")
	if err := chromedp.Do(agent, chromedp.KeyEvent("Ada")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the app took the agent's typing", func() string {
		if got := visitorText(page, "#greeting"); got != "Hello, Ada" {
			return fmt.Sprintf("greeting %q", got)
		}
		return ""
	})

	// Choosing in a list: the select's change reaches the app.
	clickReplayed(t, agent, "#plan")
	if err := chromedp.Do(agent,
		chromedp.WaitVisible(chromedp.CSS(`ul.choose`)),
		chromedp.Click(chromedp.CSS(`ul.choose li:nth-child(2)`)),
	); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the app took the agent's choice", func() string {
		if got := visitorText(page, "#chosen"); got != "Plan: pro" {
			return fmt.Sprintf("plan %q", got)
		}
		return ""
	})
	// A checkbox and a radio button: their change events reach the app.
	clickReplayed(t, agent, "#news")
	clickReplayed(t, agent, "#courier")
	eventually(t, 10*time.Second, "the app took the agent's ticks", func() string {
		if got := visitorText(page, "#prefs"); got != "News: yes, shipping: courier" {
			return fmt.Sprintf("prefs %q", got)
		}
		return ""
	})
	// A date field: the agent picks the date in the console (the visitor's
	// own picker cannot be opened remotely), the app gets its change.
	clickReplayed(t, agent, "#when")
	if err := chromedp.Do(agent,
		chromedp.WaitVisible(chromedp.CSS(`form.choose input`)),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('form.choose input').value = '2026-12-24'`),
		chromedp.Click(chromedp.CSS(`form.choose button`)),
	); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the app took the agent's date", func() string {
		if got := visitorText(page, "#date"); got != "Date: 2026-12-24" {
			return fmt.Sprintf("date %q", got)
		}
		return ""
	})
	saveArtifact(t, "control-visitor.png", page.MustScreenshot())

	// A no_control element and a masked field are refused, with the reason
	// shown to the agent.
	for _, tt := range []struct{ sel, why string }{{"#pay", "policy does not let agents"}, {"#card", "masked"}} {
		clickReplayed(t, agent, tt.sel)
		eventually(t, 10*time.Second, "the refusal in the console for "+tt.sel, func() string {
			note, _ := chromedp.Run(agent, chromedp.Text(chromedp.CSS(`#refused-note`)))
			if !strings.Contains(note, tt.why) {
				return fmt.Sprintf("note %q", note)
			}
			return ""
		})
	}
	if got := visitorText(page, "#paid"); got != "Paid: 0" {
		t.Errorf("the agent paid: %q", got)
	}
	if shot, err := chromedp.Run(agent, chromedp.CaptureScreenshot()); err == nil {
		saveArtifact(t, "control-agent.png", shot)
	}

	// The visitor presses Escape: control ends at once, and the agent's next
	// click does nothing on the page.
	page.Keyboard.MustType(input.Escape)
	eventually(t, 10*time.Second, "the console out of control", func() string {
		label, _ := chromedp.Run(agent, chromedp.Text(chromedp.CSS(`#control`)))
		if label != "Request control" {
			return fmt.Sprintf("control button %q", label)
		}
		return ""
	})
	clickReplayed(t, agent, "#name")
	if err := chromedp.Do(agent, chromedp.KeyEvent("X")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if got := visitorText(page, "#greeting"); got != "Hello, Ada" {
		t.Errorf("after the visitor took control back the page changed: %q", got)
	}
}
