package e2e

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// cobrowse loadtest against a running demo: every simulated visitor gets a
// session and an agent, probes arrive, nothing fails.
func TestLoadtestCommand(t *testing.T) {
	c := startCobrowse(t, "demo", "--join", "consent") // the simulated visitors accept
	out, err := exec.Command(run.binary, "loadtest", "--visitor", c.visitorURL, "--agent", c.agentURL,
		"--token", c.token, "--visitors", "3", "--duration", "6s", "--ramp", "1s").CombinedOutput()
	if err != nil {
		t.Fatalf("loadtest: %v\n%s", err, out)
	}
	report := string(out)
	t.Logf("loadtest report:\n%s", report)
	for _, want := range []string{"sessions                                3", "errors                                  0"} {
		if !strings.Contains(strings.Join(strings.Fields(report), " "), strings.Join(strings.Fields(want), " ")) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`latency \((\d+) probes\)`).FindStringSubmatch(report); m == nil || m[1] == "0" {
		t.Errorf("no latency probe reached an agent")
	}
	if !strings.Contains(report, "server memory") || strings.Contains(report, "unknown") {
		t.Errorf("the report lacks the server's memory from /metrics")
	}
}
