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
	"syscall"

	"github.com/peterbourgon/ff/v3/ffcli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := rootCommand(os.Stdout).ParseAndRun(ctx, os.Args[1:])
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "hnsec:", err)
		os.Exit(1)
	}
}

func rootCommand(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("hnsec", flag.ContinueOnError)
	return &ffcli.Command{
		Name:        "hnsec",
		ShortUsage:  "hnsec <serve|admin|migrate|dev> [flags]",
		ShortHelp:   "Helsenorge integration security services",
		FlagSet:     fs,
		Subcommands: []*ffcli.Command{serveCommand(out), adminCommand(out), migrateCommand(out), devCommand(out)},
		Exec:        func(context.Context, []string) error { return flag.ErrHelp },
	}
}
