package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/cobrowse/cobrowse/internal/editdistance"
)

// The configuration of serve and demo comes from three places besides the
// flags' defaults. Each flag NAME (without "--") is also
//
//   - a key NAME of the YAML file named by --config (or $COBROWSE_CONFIG),
//   - an environment variable COBROWSE_NAME, upper case with "-" as "_",
//
// and a flag given on the command line wins over the environment, which
// wins over the file. docs/configuration.md lists them all.

// configHelp tells the -h output where else settings come from.
const configHelp = `Every flag may also be set in the --config file (key: the flag's name without --)
or in the environment as COBROWSE_<NAME> (upper case, "-" as "_"), e.g.
COBROWSE_AGENT_TOKEN. The command line wins over the environment, which wins
over the file. See docs/configuration.md.`

// configFlag is the flag that names the config file; it has no key in the
// file itself.
const configFlag = "config"

// envPrefix starts the environment variable of every flag.
const envPrefix = "COBROWSE_"

// maxConfigBytes bounds the config file.
const maxConfigBytes = 1 << 20

// envName is the environment variable of the flag name.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// repeatable is implemented by the flag values that may be given more than
// once: in the file their key takes a list, and each Set adds to the value.
type repeatable interface{ repeatable() }

// registerConfig adds --config to fs; parseFlags reads the file it names.
func registerConfig(fs *flag.FlagSet) *string {
	return fs.String(configFlag, "", "YAML `file` of settings, one key per flag (the flag's name without --; lists for repeatable flags), e.g. \"upstream: https://www.example.com\"; flags and COBROWSE_* environment variables win over it (docs/configuration.md)")
}

// parseFlags parses args into fs, then sets every flag the command line
// did not set from its environment variable (lookupEnv, usually
// os.LookupEnv; an empty value counts as unset) or else from the config
// file (--config, or the environment's COBROWSE_CONFIG). configPath is the
// value registerConfig returned.
func parseFlags(fs *flag.FlagSet, args []string, configPath *string, lookupEnv func(string) (string, bool)) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	env := func(name string) (string, bool) {
		v, ok := lookupEnv(envName(name))
		return v, ok && v != ""
	}
	if !onCommandLine[configFlag] {
		if v, ok := env(configFlag); ok {
			*configPath = v
		}
	}
	var file map[string]*yaml.Node
	if *configPath != "" {
		var err error
		if file, err = readConfig(fs, *configPath); err != nil {
			return err
		}
	}
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if onCommandLine[f.Name] || f.Name == configFlag {
			return
		}
		if v, ok := env(f.Name); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q (--%s): %w", envName(f.Name), v, f.Name, err))
			}
			return
		}
		if node := file[f.Name]; node != nil {
			if err := setFromNode(f, node); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d:%d: %s: %w", *configPath, node.Line, node.Column, f.Name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// readConfig reads the config file at path: a YAML mapping whose keys are
// fs's flags. Every key is checked, so that a typo is an error rather than
// a setting silently ignored.
func readConfig(fs *flag.FlagSet, path string) (map[string]*yaml.Node, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	if len(data) > maxConfigBytes {
		return nil, fmt.Errorf("--config %s: the file is over %d bytes; is it the right file?", path, maxConfigBytes)
	}
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil // an empty file sets nothing
		}
		return nil, fmt.Errorf("--config %s: %w", path, err)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%s:%d:%d: the file must be a mapping of flag names to values, like \"listen: :8080\"", path, root.Line, root.Column)
	}
	values := map[string]*yaml.Node{}
	var errs []error
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, value := root.Content[i], root.Content[i+1]
		switch {
		case key.Kind != yaml.ScalarNode:
			errs = append(errs, fmt.Errorf("%s:%d:%d: a key must be a flag name", path, key.Line, key.Column))
		case key.Value == configFlag:
			errs = append(errs, fmt.Errorf("%s:%d:%d: %q: a config file cannot name another one", path, key.Line, key.Column, key.Value))
		case fs.Lookup(key.Value) == nil:
			errs = append(errs, fmt.Errorf("%s:%d:%d: unknown key %q%s (the keys are the flags of 'cobrowse %s -h', without --)",
				path, key.Line, key.Column, key.Value, suggestFlag(fs, key.Value), fs.Name()))
		case values[key.Value] != nil:
			errs = append(errs, fmt.Errorf("%s:%d:%d: %q is set twice (first on line %d)", path, key.Line, key.Column, key.Value, values[key.Value].Line))
		default:
			values[key.Value] = value
		}
	}
	return values, errors.Join(errs...)
}

// setFromNode sets flag f from its value in the file: a scalar, or for a
// repeatable flag also a list of scalars.
func setFromNode(f *flag.Flag, node *yaml.Node) error {
	items := []*yaml.Node{node}
	if node.Kind == yaml.SequenceNode {
		if _, ok := f.Value.(repeatable); !ok {
			return errors.New("takes one value, not a list")
		}
		items = node.Content
	}
	for _, item := range items {
		if item.Kind != yaml.ScalarNode || item.Tag == "!!null" {
			return fmt.Errorf("line %d: give a value (a string, number or boolean)", item.Line)
		}
		if err := f.Value.Set(item.Value); err != nil {
			return err
		}
	}
	return nil
}

// suggestFlag returns `; did you mean "NAME"?` for the flag closest to a
// misspelt key, or "" if none is close.
func suggestFlag(fs *flag.FlagSet, key string) string {
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	sort.Strings(names)
	best, dist := editdistance.Closest(key, names)
	if best == "" || dist > 2 { // at most two edits away
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}
