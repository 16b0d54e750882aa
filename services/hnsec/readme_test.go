package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// asHnsecEnv makes the test binary run as the hnsec command with its own arguments (see TestMain): the
// bin/hnsec that TestReadme's shell blocks call.
const asHnsecEnv = "HNSEC_TEST_AS_HNSEC"

// notRunMarker, on the line before a README block, keeps TestReadme from running it.
const notRunMarker = "<!-- TestReadme: not run"

// readmeBlock is one ```sh block of the README and the line it starts on.
type readmeBlock struct {
	line int
	text string
}

// readmeBlocks returns the README's shell blocks in order, without those marked as not run.
func readmeBlocks(t *testing.T, path string) []readmeBlock {
	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	var (
		blocks []readmeBlock
		cur    *readmeBlock // the block being read, nil between blocks
		skip   bool
		prev   string
		n      int
		sc     = bufio.NewScanner(f)
	)
	for sc.Scan() {
		n++
		line := sc.Text()
		switch {
		case cur == nil && line == "```sh":
			cur, skip = &readmeBlock{line: n}, strings.HasPrefix(prev, notRunMarker)
		case cur != nil && line == "```":
			if !skip {
				blocks = append(blocks, *cur)
			}
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
		prev = line
	}
	require.NoError(t, sc.Err())
	if cur != nil {
		t.Fatalf("the block opened on line %d is not closed", cur.line)
	}
	return blocks
}

// TestReadme pastes the README's shell blocks in order into one shell, in a folder like the repository's
// (bin/hnsec, data/), against a fresh `hnsec serve --dev`, as a reader following it would: every command
// must succeed (the blocks' curl calls fail on an HTTP error), so the README cannot drift from hnsec.
func TestReadme(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "the README's examples need %s", tool)
	}
	blocks := readmeBlocks(t, filepath.Join("..", "..", "README.md"))
	require.GreaterOrEqual(t, len(blocks), 4)

	dir := t.TempDir()
	require.NoError(t, os.Mkdir(filepath.Join(dir, "bin"), 0o755))
	self, err := os.Executable()
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "bin", "hnsec"),
		[]byte(fmt.Sprintf("#!/bin/sh\n%s=1 exec %q \"$@\"\n", asHnsecEnv, self)), 0o755))
	srv, _ := childServer(t, filepath.Join(dir, "data"))

	var script strings.Builder
	script.WriteString("set -euo pipefail\nexport HNSEC_ADDR=" + srv.grpcAddr + "\n")
	for _, b := range blocks {
		fmt.Fprintf(&script, "echo '>>> README block at line %d' >&2\n", b.line)
		script.WriteString(strings.ReplaceAll(b.text, "127.0.0.1:8080", strings.TrimPrefix(srv.base, "http://")))
	}
	cmd := exec.Command("bash", "-c", script.String())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "the README's blocks, run in order:\n%s", out)
	for _, want := range []string{`"token_type":"bearer"`, `{"active":false}`, `"returKode":"ok"`} {
		require.Contains(t, string(out), want)
	}
	// The admin credentials the blocks saved are private.
	for _, f := range []string{"vendor-admin.json", "api-admin.json", "org-admin.json"} {
		info, err := os.Stat(filepath.Join(dir, "data", f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), info.Mode().Perm(), f)
	}
}
