package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/services/dispatcher"
	"github.com/hnsec/hnsec/services/pvk"
	"github.com/hnsec/hnsec/services/registry"
	"github.com/hnsec/hnsec/services/sts"
)

// storeMigrations are the services' schemas, by the name of their database.
var storeMigrations = map[string]store.Migrations{
	"registry":   registry.Migrations,
	"sts":        sts.Migrations,
	"pvk":        pvk.Migrations,
	"dispatcher": dispatcher.Migrations,
}

// migrateCommand brings the services' databases to this binary's schema without starting them (serve
// also migrates at start; operators may want it as a step of their own before a rollout).
func migrateCommand(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("hnsec migrate", flag.ContinueOnError)
	var cfg serveConfig
	fs.StringVar(&cfg.DataDir, "data-dir", "./data", "data directory (SQLite files)")
	cfg.registerDatabaseFlags(fs, 5*time.Minute) // a migration may take a while
	services := fs.String("services", "all", "databases to migrate: all, or a comma-separated subset of registry,sts,pvk,dispatcher")
	return &ffcli.Command{
		Name: "migrate", ShortUsage: "hnsec migrate [--database-url postgres://...] [--services ...]",
		ShortHelp: "bring the services' databases to this binary's schema and exit",
		FlagSet:   fs, Options: []ff.Option{ff.WithEnvVarPrefix("HNSEC")},
		Exec: func(ctx context.Context, _ []string) error {
			names := []string{"registry", "sts", "pvk", "dispatcher"}
			if *services != "all" {
				names = strings.Split(*services, ",")
			}
			for _, name := range names {
				m, ok := storeMigrations[name]
				if !ok {
					return fmt.Errorf("--services: unknown database %q (want %s)", name, strings.Join(slices.Sorted(maps.Keys(storeMigrations)), ", "))
				}
				db, err := store.Open(ctx, storeConfigOf(cfg), name, m)
				if err != nil {
					return err
				}
				_ = db.Close()
				fmt.Fprintf(out, "%s: schema version %d\n", name, len(m.SQLite))
			}
			return nil
		},
	}
}
