package policies

import (
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	p, err := Parse("test.yaml", []byte(accountPolicy))
	if err != nil {
		t.Fatal(err)
	}
	const page = `<!DOCTYPE html><html><head><title>Account</title></head><body>
<p class="secret">Balance 1234.56</p>
<div id="ssn-block"><b>SSN 123-45-6789</b></div>
<p>Write to jane@example.com</p>
<input type="password" value="hunter22">
</body></html>`
	rep, err := p.Explain("https://shop.example.com/account/home", strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"1234.56", "123-45-6789", "jane@example.com", "hunter22"} {
		if strings.Contains(rep.HTML, leak) {
			t.Errorf("the agent's page shows %q:\n%s", leak, rep.HTML)
		}
	}
	for _, want := range []string{`<p class="secret">******* *******</p>`, `<div id="ssn-block"></div>`, "Write to ****************", `value="********"`} {
		if !strings.Contains(rep.HTML, want) {
			t.Errorf("the agent's page lacks %q:\n%s", want, rep.HTML)
		}
	}
	if len(rep.Rules) != 1 || rep.Rules[0] != "account-secrets" || rep.Blocked {
		t.Errorf("rules %v, blocked %v", rep.Rules, rep.Blocked)
	}
	got := map[string]int{}
	for _, r := range rep.Redactions {
		got[r.What] = r.Count
	}
	for what, n := range map[string]int{"mask .secret": 1, "remove #ssn-block": 1, "detector email": 1, "inputs: sensitive field": 1} {
		if got[what] != n {
			t.Errorf("redactions[%q] = %d, want %d (all: %v)", what, got[what], n, rep.Redactions)
		}
	}

	rep, err = p.Explain("https://shop.example.com/admin/", strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Blocked || !strings.Contains(rep.HTML, "Hidden by policy") || strings.Contains(rep.HTML, "Balance") {
		t.Errorf("blocked page: blocked=%v\n%s", rep.Blocked, rep.HTML)
	}
}
