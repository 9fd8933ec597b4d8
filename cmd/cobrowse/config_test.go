package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// parseServe parses args as serve's flags with env as the environment.
func parseServe(t *testing.T, args []string, env map[string]string) (*options, error) {
	t.Helper()
	var o options
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.upstream, "upstream", "", "")
	fs.Var(&o.routes, "route", "")
	o.register(fs, ":8080")
	err := parseFlags(fs, args, o.configFile, func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	})
	return &o, err
}

func writeConfig(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "cobrowse.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestConfigPrecedence(t *testing.T) {
	file := writeConfig(t, `
listen: 127.0.0.1:7000        # file
agent-listen: 127.0.0.1:7001  # file, env overrides it
render-tabs: 6                # file, env and flag override it
render: true
render-wait: 2s
asset-allow: [cdn.example.com, "*.fonts.example"]
trusted-proxy: [10.0.0.0/8, "127.0.0.1,::1"]
route:
  - shop.example.com=http://10.0.0.1:8080
  - blog.example.com=http://10.0.0.2:8080
`)
	env := map[string]string{
		"COBROWSE_CONFIG":       file,
		"COBROWSE_AGENT_LISTEN": "127.0.0.1:7101",
		"COBROWSE_RENDER_TABS":  "7",
		"COBROWSE_AGENT_TOKEN":  "token-from-the-environment",
		"COBROWSE_LOG_LEVEL":    "", // empty: as if unset
		"COBROWSE_UNRELATED":    "not a flag: ignored",
	}
	o, err := parseServe(t, []string{"--render-tabs", "8", "--asset-deny", "ads.example"}, env)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"listen (file over default)", o.listen, "127.0.0.1:7000"},
		{"agent-listen (env over file)", o.agentListen, "127.0.0.1:7101"},
		{"render-tabs (flag over env over file)", o.render.tabs, 8},
		{"render (file, boolean)", o.render.enabled, true},
		{"render-wait (file, duration)", o.render.wait, 2 * time.Second},
		{"render-browsers (default)", o.render.browsers, 1},
		{"agent-token (env)", o.agentToken, "token-from-the-environment"},
		{"log-level (empty env: default)", o.logLevel.String(), "INFO"},
		{"asset-allow (file, list)", strings.Join(o.assets.allow, " "), "cdn.example.com *.fonts.example"},
		{"asset-deny (flag)", strings.Join(o.assets.deny, " "), "ads.example"},
		{"trusted-proxy (file, list)", o.trustedProxies.String(), "10.0.0.0/8,127.0.0.1/32,::1/128"},
		{"route (file, list)", o.routes.String(), "shop.example.com=http://10.0.0.1:8080,blog.example.com=http://10.0.0.2:8080"},
		{"config (env)", *o.configFile, file},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// --config on the command line wins over COBROWSE_CONFIG; a repeatable
	// flag from the environment is comma-separated.
	other := writeConfig(t, "listen: 127.0.0.1:7200\n")
	o, err = parseServe(t, []string{"--config", other}, map[string]string{"COBROWSE_CONFIG": file, "COBROWSE_ROUTE": "a.example=http://10.0.0.3, b.example=http://10.0.0.4",
		"COBROWSE_TRUSTED_PROXY": "172.28.0.0/16, fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	if o.listen != "127.0.0.1:7200" || o.render.tabs != 4 {
		t.Errorf("with --config: listen %q, render-tabs %d; want the other file's listen and the default tabs", o.listen, o.render.tabs)
	}
	if got := o.routes.String(); got != "a.example=http://10.0.0.3,b.example=http://10.0.0.4" {
		t.Errorf("COBROWSE_ROUTE gave routes %q", got)
	}
	if got := o.trustedProxies.String(); got != "172.28.0.0/16,fd00::/8" {
		t.Errorf("COBROWSE_TRUSTED_PROXY gave trusted proxies %q", got)
	}
}

func TestConfigErrorsSayWhere(t *testing.T) {
	tests := []struct {
		name, file string
		env        map[string]string
		want       []string
	}{
		{"unknown key", "listen: :8080\nlsten: :9090\n", nil, []string{`cobrowse.yaml:2:1: unknown key "lsten"; did you mean "listen"?`}},
		{"unknown keys are all reported", "foo: 1\nrender: true\nbar: 2\n", nil, []string{`:1:1: unknown key "foo"`, `:3:1: unknown key "bar"`}},
		{"a bad value", "render-tabs: many\n", nil, []string{`cobrowse.yaml:1:14: render-tabs: parse error`}},
		{"a list for a single value", "listen: [a, b]\n", nil, []string{`cobrowse.yaml:1:9: listen: takes one value, not a list`}},
		{"no value", "upstream:\n", nil, []string{`cobrowse.yaml:1:10: upstream: line 1: give a value`}},
		{"a key twice", "listen: a\nlisten: b\n", nil, []string{`cobrowse.yaml:2:1: "listen" is set twice (first on line 1)`}},
		{"not a mapping", "- listen\n", nil, []string{`cobrowse.yaml:1:1: the file must be a mapping`}},
		{"config in the file", "config: other.yaml\n", nil, []string{`cannot name another one`}},
		{"not YAML", "listen: [\n", nil, []string{`--config`, `cobrowse.yaml`}},
		{"a bad environment value", "", map[string]string{"COBROWSE_RENDER_QUEUE": "lots"}, []string{`COBROWSE_RENDER_QUEUE="lots" (--render-queue): parse error`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseServe(t, []string{"--config", writeConfig(t, tc.file)}, tc.env)
			if err == nil {
				t.Fatal("parsed; want an error")
			}
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
		})
	}
	if _, err := parseServe(t, []string{"--config", "/nonexistent/cobrowse.yaml"}, nil); err == nil || !strings.Contains(err.Error(), "--config: open /nonexistent/cobrowse.yaml") {
		t.Errorf("a missing file: %v", err)
	}
	if o, err := parseServe(t, []string{"--config", writeConfig(t, "# nothing set yet\n")}, nil); err != nil || o.listen != ":8080" {
		t.Errorf("an empty file: %v, listen %q; want no error and the defaults", err, o.listen)
	}
}

// docs/configuration.md documents every flag of serve, with its
// environment variable, and no flag serve does not have.
func TestConfigurationDocListsEveryFlag(t *testing.T) {
	var stderr bytes.Buffer
	if err := run(context.Background(), []string{"serve", "-h"}, io.Discard, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h: %v", err)
	}
	var help []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(stderr.String(), -1) {
		help = append(help, m[1])
	}
	doc, err := os.ReadFile("../../docs/configuration.md")
	if err != nil {
		t.Fatal(err)
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)[^|]*\\|([^\\n]*)").FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
		if !strings.Contains(m[2], "`"+envName(m[1])+"`") {
			t.Errorf("docs/configuration.md: the row of --%s does not name `%s`", m[1], envName(m[1]))
		}
	}
	slices.Sort(help)
	slices.Sort(documented)
	if len(help) < 20 {
		t.Fatalf("found only %d flags in serve -h:\n%s", len(help), stderr.String())
	}
	for _, name := range help {
		if !slices.Contains(documented, name) {
			t.Errorf("--%s is in 'cobrowse serve -h' but not in docs/configuration.md", name)
		}
	}
	for _, name := range documented {
		if !slices.Contains(help, name) {
			t.Errorf("--%s is in docs/configuration.md but not in 'cobrowse serve -h'", name)
		}
	}
}
