package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestVisitorScriptMasksFirst checks the visitor script's half of a policy:
// with the page's client policy (fetched from /__cobrowse/policy), text under
// mask selectors, the values of masked fields and removed blocks never leave
// the visitor's browser at all, while public text does. (The server's half,
// with a script that ignores the policy, is TestNoSecretReachesAnAgent.)
func TestVisitorScriptMasksFirst(t *testing.T) {
	c, _ := startLeakServer(t)
	page := visitorBrowser(t).MustPage("").Timeout(60 * time.Second)
	sent := captureVisitorTraffic(t, page)
	page.MustNavigate(strings.TrimSuffix(c.visitorURL, "/") + leakProfilePath).MustWaitLoad()

	// Masked by the page's mask and remove selectors, in the first snapshot.
	secrets := []string{
		"Mira Quintessa Holloway", "Masked-Text-Kappa-5821", "Velvet-Otter-3392", "Split-Alpha", "Omega-7730",
		"Masked-Value-Juniper", "Masked-Link-Text-Vole", "Masked-Data-Text-Ocelot",
		"Removed-Block-Marigold", "Removed-Notes-Tamarind", "078-05-1120",
	}
	eventually(t, 10*time.Second, "the visitor's snapshot is sent", func() string {
		if !strings.Contains(sent.all(), "Public profile heading") {
			return "no snapshot with the public heading yet"
		}
		return ""
	})
	all := sent.all()
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("the visitor script sent %q, which the page's policy masks", s)
		}
	}
	if !strings.Contains(all, strings.Repeat("*", len("Masked-Text-Kappa-5821"))) {
		t.Errorf("no masked text in what the visitor sent: was the policy applied at all?")
	}
}
