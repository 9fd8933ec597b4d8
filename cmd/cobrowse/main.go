// Command cobrowse fronts a website so that support agents can see, live,
// what its visitors see. See README.md.
//
//	cobrowse serve --upstream https://www.example.com   front a site
//	cobrowse demo                                      front the built-in demo shop
//	cobrowse policy check FILE                         validate a redaction policy
//	cobrowse render-worker --nats URL                  render a cluster's sessions
//	cobrowse version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `cobrowse: co-browsing for a site you front, without editing it.

Usage:
  cobrowse serve --upstream URL [flags]   front URL for visitors; agents watch on --agent-listen
  cobrowse demo [flags]                   front the built-in demo shop (try this first)
  cobrowse policy check FILE              validate a redaction policy file
  cobrowse policy test [flags] PAGE|URL   show a page as an agent would see it under a policy
  cobrowse loadtest [flags]               simulate visitors and agents against a running server
  cobrowse render-worker --nats URL       render a cluster's sessions in Chromium on this host
  cobrowse version                        print the version

Run "cobrowse serve -h" or "cobrowse demo -h" for their flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "cobrowse:", err)
		}
		if status, ok := errors.AsType[exitStatus](err); ok {
			os.Exit(status.code)
		}
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("a subcommand is required")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "policy":
		return policyCommand(args[1:], stdout, stderr)
	case "loadtest":
		return loadtest(ctx, args[1:], stdout, stderr)
	case "render-worker":
		return renderWorker(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "cobrowse", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("unknown subcommand %q", args[0])
	}
}
