package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/cobrowse/cobrowse/policies"
)

const policyUsage = `Usage:
  cobrowse policy check FILE   validate a redaction policy file (docs/policies.md);
                               prints each problem as FILE:LINE:COLUMN: problem,
                               exit status 1 if there is any
`

// policyCommand runs "cobrowse policy ...": the tools for the people who
// write redaction policies.
func policyCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, policyUsage)
		if len(args) == 0 {
			return errors.New("policy: a subcommand is required")
		}
		return nil
	}
	switch args[0] {
	case "check":
		if len(args) != 2 {
			fmt.Fprint(stderr, policyUsage)
			return errors.New("policy check: give exactly one FILE")
		}
		return checkPolicy(args[1], stdout, stderr)
	}
	fmt.Fprint(stderr, policyUsage)
	return fmt.Errorf("policy: unknown subcommand %q", args[0])
}

// checkPolicy validates the policy file at path: its problems go to stderr
// and make the command fail with status 1; a valid file is summarised on
// stdout.
func checkPolicy(path string, stdout, stderr io.Writer) error {
	p, err := policies.Load(path)
	if err != nil {
		var errs policies.Errors
		if !errors.As(err, &errs) {
			return err // the file could not be read
		}
		for _, e := range errs {
			fmt.Fprintln(stderr, e)
		}
		return exitStatus{1, fmt.Sprintf("%s: %d problem(s); the file was not accepted", path, len(errs))}
	}
	rules := p.Rules()
	fmt.Fprintf(stdout, "%s: ok, %d rule(s)", path, len(rules))
	if len(rules) > 0 {
		fmt.Fprintf(stdout, ": %s", strings.Join(rules, ", "))
	}
	fmt.Fprintln(stdout)
	return nil
}

// exitStatus is an error that ends the command with a given exit status and
// message.
type exitStatus struct {
	code int
	msg  string
}

func (e exitStatus) Error() string { return e.msg }
