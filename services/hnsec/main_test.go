package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/version"
)

// The command line names what it does not know, with the command meant when one is close, and prints the
// build's version.
func TestCommandLine(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
		wantOut string
	}{
		{[]string{"sevre"}, `unknown command "sevre"; did you mean "serve"?`, ""},
		{[]string{"frobnicate"}, `unknown command "frobnicate" (see --help)`, ""},
		{[]string{"admin", "vendr", "list"}, `unknown command "vendr"; did you mean "vendor"?`, ""},
		{[]string{"admin", "vendor", "lst"}, `unknown command "lst"; did you mean "list"?`, ""},
		{[]string{"admin", "pvk", "subscription", "creat"}, `unknown command "creat"; did you mean "create"?`, ""},
		{[]string{"admin", "gr"}, `unknown command "gr"; did you mean "grant"?`, ""},
		{[]string{"dev", "cert"}, `unknown command "cert"; did you mean "certs"?`, ""},
		{[]string{"serve", "--no-such-flag"}, "error parsing commandline arguments: flag provided but not defined: -no-such-flag", ""},
		{[]string{"version", "extra"}, "version takes no arguments", ""},
		{[]string{"version"}, "", version.Get().String() + "\n"},
		{[]string{"--version"}, "", version.Get().String() + "\n"},
		{[]string{"admin"}, flag.ErrHelp.Error(), ""},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			root := rootCommand(&out)
			root.FlagSet.SetOutput(new(bytes.Buffer))
			err := root.ParseAndRun(context.Background(), tt.args)
			if tt.wantErr == "" {
				require.NoError(t, err)
			} else {
				require.EqualError(t, err, tt.wantErr)
			}
			require.Equal(t, tt.wantOut, out.String())
		})
	}
}

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"serve", "serve", 0}, {"sevre", "serve", 2}, {"vendr", "vendor", 1}, {"", "abc", 3}, {"kitten", "sitting", 3}} {
		require.Equal(t, tc.want, editDistance(tc.a, tc.b), "%s %s", tc.a, tc.b)
	}
}

// An admin command against an address where no hnsec runs says so, not a raw dial error.
func TestAdminCannotReachTheServer(t *testing.T) {
	cred := filepath.Join(t.TempDir(), "cred.json")
	require.NoError(t, os.WriteFile(cred, []byte(`{"client_id":"6f1c2d3e-0000-4000-8000-000000000001","client_secret":"x"}`), 0o600))
	addr := freeAddr(t)
	err := rootCommand(new(bytes.Buffer)).ParseAndRun(context.Background(), []string{"admin", "--addr", addr, "--credentials-file", cred, "vendor", "list"})
	require.EqualError(t, err, "cannot reach hnsec at "+addr+" (is it running? --addr names another)")
}

// Flags may follow a command's positional arguments; after "--" everything is positional.
func TestInterleavedFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantPos []string
		wantO   string
		wantErr string
	}{
		{[]string{"ID", "-o", "json"}, []string{"ID"}, "json", ""},
		{[]string{"ID", "--o=json", "ID2"}, []string{"ID", "ID2"}, "json", ""},
		{[]string{"-kid"}, []string{"-kid"}, "text", ""}, // what "--" left: the first positional is never a flag
		{[]string{"ID", "--", "-o", "json"}, []string{"ID", "-o", "json"}, "text", ""},
		{[]string{"ID", "-o", "json", "--", "-x", "-y"}, []string{"ID", "-x", "-y"}, "json", ""},
		{[]string{"ID", "--nope"}, nil, "text", "flag provided but not defined: -nope"},
		{nil, nil, "text", ""},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(new(bytes.Buffer))
		o := fs.String("o", "text", "")
		pos, err := interleaved(fs, tc.args)
		if tc.wantErr != "" {
			require.EqualError(t, err, tc.wantErr, "%q", tc.args)
			continue
		}
		require.NoError(t, err, "%q", tc.args)
		require.Equal(t, tc.wantPos, pos, "%q", tc.args)
		require.Equal(t, tc.wantO, *o, "%q", tc.args)
	}
}
