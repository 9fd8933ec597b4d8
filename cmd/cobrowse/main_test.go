package main

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandLineErrorsSayWhatToDo(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no subcommand", nil, "a subcommand is required"},
		{"unknown subcommand", []string{"serv"}, `unknown subcommand "serv"`},
		{"serve without upstream", []string{"serve"}, "--upstream (or at least one --route) is required"},
		{"route without =", []string{"serve", "--route", "shop.example.com"}, "is not host=URL"},
		{"route host with port", []string{"serve", "--route", "shop.example.com:80=http://127.0.0.1:1", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, "without scheme or port"},
		{"route host given twice", []string{"serve", "--route", "shop.example.com=http://127.0.0.1:1", "--route", "Shop.Example.com.=http://127.0.0.1:2", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, "host Shop.Example.com. is given twice"},
		{"route to a non-http upstream", []string{"serve", "--route", "shop.example.com=ftp://127.0.0.1:1", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, "--route shop.example.com"},
		{"tls cert without key", []string{"serve", "--upstream", "http://127.0.0.1:1", "--tls-cert", "cert.pem"}, "go together"},
		{"missing tls files", []string{"serve", "--upstream", "http://127.0.0.1:1", "--tls-cert", "/nonexistent/cert.pem", "--tls-key", "/nonexistent/key.pem", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, "loading --tls-cert/--tls-key"},
		{"relative upstream", []string{"serve", "--upstream", "example.com", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, "upstream"},
		{"short agent token", []string{"serve", "--upstream", "http://127.0.0.1:1", "--agent-token", "short", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, "at least 16 characters"},
		{"bad trusted proxy", []string{"serve", "--upstream", "http://127.0.0.1:1", "--trusted-proxy", "10.0.0.0/8,caddy", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, `invalid value "10.0.0.0/8,caddy" for flag -trusted-proxy: "caddy" is not an IP address or CIDR network`},
		{"bad trusted proxy network", []string{"demo", "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "10.0.0.0/33", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, `"10.0.0.0/33" is not an IP address or CIDR network`},
		{"bad log level", []string{"demo", "--log-level", "loud"}, "log-level"},
		{"bad log format", []string{"demo", "--log-format", "xml"}, `"xml" is neither text nor json`},
		{"zero shutdown timeout", []string{"demo", "--shutdown-timeout", "0s", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, "--shutdown-timeout is 0s"},
		{"bad policy file", []string{"serve", "--upstream", "http://127.0.0.1:1", "--policy", "testdata/bad-policy.yaml", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, `bad-policy.yaml:3:5: unknown key "maks"`},
		{"missing policy file", []string{"serve", "--upstream", "http://127.0.0.1:1", "--policy", "/nonexistent/policy.yaml", "--listen", "127.0.0.1:0", "--agent-listen", "127.0.0.1:0"}, "--policy"},
		{"policy check without file", []string{"policy", "check"}, "give exactly one FILE"},
		{"listen address in use", []string{"serve", "--upstream", "http://127.0.0.1:1", "--listen", "256.0.0.1:80", "--agent-listen", "127.0.0.1:0"}, "choose another --listen address"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), tc.args, &stdout, &stderr)
			if err == nil {
				t.Fatalf("run(%q) succeeded, want an error containing %q", tc.args, tc.wantErr)
			}
			if msg := err.Error() + stderr.String(); !strings.Contains(msg, tc.wantErr) {
				t.Fatalf("run(%q) = %v (stderr %q), want it to mention %q", tc.args, err, stderr.String(), tc.wantErr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	var stdout bytes.Buffer
	if err := run(context.Background(), []string{"version"}, &stdout, &stdout); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "cobrowse ") {
		t.Fatalf("version printed %q", stdout.String())
	}
}

func TestPolicyCheck(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"policy", "check", "testdata/bad-policy.yaml"}, &stdout, &stderr)
	if status, ok := errors.AsType[exitStatus](err); !ok || status.code != 1 {
		t.Fatalf("check of a bad file: %v, want exit status 1", err)
	}
	for _, want := range []string{
		`testdata/bad-policy.yaml:3:5: unknown key "maks" in a rule; did you mean "mask"?`,
		`testdata/bad-policy.yaml:4:14: remove: invalid CSS selector "##x"`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"policy", "check", "testdata/policy.yaml"}, &stdout, &stderr); err != nil {
		t.Fatalf("check of a good file: %v", err)
	}
	if want := "testdata/policy.yaml: ok, 2 rule(s): account-secrets, admin\n"; stdout.String() != want {
		t.Errorf("stdout %q, want %q", stdout.String(), want)
	}
}

func TestPolicyTest(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"policy", "test", "--policy", "testdata/policy.yaml",
		"--url", "https://shop.example.com/account/x", "testdata/account.html"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("policy test: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, leak := range []string{"1234.56", "123-45-6789", "jane@example.com", "hunter22", "4111"} {
		if strings.Contains(out, leak) {
			t.Errorf("the output shows %q:\n%s", leak, out)
		}
	}
	for _, want := range []string{
		`<p class="secret">******* *******</p>`,
		"rules that apply: account-secrets\n",
		"      1  remove #ssn-block\n",
		"      2  detector email\n",
		"      1  inputs: sensitive field\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the output lacks %q:\n%s", want, out)
		}
	}
}

// policy test --screenshot renders the redacted view in headless Chromium.
func TestPolicyTestScreenshot(t *testing.T) {
	out := filepath.Join(t.TempDir(), "view.png")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"policy", "test", "--policy", "testdata/policy.yaml",
		"--url", "https://shop.example.com/account/x", "--screenshot", out, "testdata/account.html"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("policy test --screenshot: %v\n%s", err, stderr.String())
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("the screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() < 100 {
		t.Errorf("screenshot %v, want 1280 wide", b)
	}
	if !strings.Contains(stdout.String(), "the redacted view, rendered: "+out) {
		t.Errorf("stdout lacks where the screenshot went:\n%s", stdout.String())
	}
}
