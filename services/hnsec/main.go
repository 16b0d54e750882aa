// Command hnsec runs the hnsec services (`hnsec serve`) and administers them over gRPC (`hnsec admin`).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hnsec/hnsec/pkg/version"
)

func main() {
	ctx, stop := signalContext()
	err := rootCommand(os.Stdout).ParseAndRun(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "hnsec:", err)
		os.Exit(1)
	}
}

// signalContext ends on the first SIGINT or SIGTERM, with the signal as its cause (the server logs it as
// it shuts down); a second one ends the process at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		select {
		case sig := <-sigs:
			signal.Stop(sigs)
			cancel(fmt.Errorf("signal %s", sig))
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(sigs); cancel(context.Canceled) }
}

func rootCommand(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("hnsec", flag.ContinueOnError)
	showVersion := fs.Bool("version", false, "print the version, commit and Go version, and exit")
	subs := []*ffcli.Command{serveCommand(out), adminCommand(out), migrateCommand(out), devCommand(out), versionCommand(out)}
	group := groupExec(subs)
	return &ffcli.Command{
		Name:        "hnsec",
		ShortUsage:  "hnsec <serve|admin|migrate|dev|version> [flags]",
		ShortHelp:   "Helsenorge integration security services",
		FlagSet:     fs,
		Subcommands: subs,
		Exec: func(ctx context.Context, args []string) error {
			if *showVersion {
				_, err := fmt.Fprintln(out, version.Get())
				return err
			}
			return group(ctx, args)
		},
	}
}

// versionCommand prints the build's version.
func versionCommand(out io.Writer) *ffcli.Command {
	return &ffcli.Command{
		Name: "version", ShortUsage: "hnsec version", ShortHelp: "print the version, commit and Go version",
		FlagSet: flag.NewFlagSet("hnsec version", flag.ContinueOnError),
		Exec: func(_ context.Context, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("version takes no arguments")
			}
			_, err := fmt.Fprintln(out, version.Get())
			return err
		},
	}
}

// groupExec is the Exec of a command that only groups others: without arguments it shows the help; an
// argument that names none of them is an error that names it and, when one is close, the command meant.
func groupExec(subs []*ffcli.Command) func(context.Context, []string) error {
	return func(_ context.Context, args []string) error {
		if len(args) == 0 {
			return flag.ErrHelp
		}
		best, dist := "", 3 // at most two edits away, or a command the argument starts
		for _, c := range subs {
			d := editDistance(args[0], c.Name)
			if strings.HasPrefix(c.Name, args[0]) {
				d = 0
			}
			if d < dist {
				best, dist = c.Name, d
			}
		}
		if best != "" {
			return fmt.Errorf("unknown command %q; did you mean %q?", args[0], best)
		}
		return fmt.Errorf("unknown command %q (see --help)", args[0])
	}
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
