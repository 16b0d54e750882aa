package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/peterbourgon/ff/v3"
	"github.com/stretchr/testify/require"
)

func TestNATSCredential(t *testing.T) {
	const token = "a-token-of-at-least-thirty-two-characters"
	creds := "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QifQ\n------END NATS USER JWT------\n"
	tests := []struct {
		name               string
		url, listen        string
		file               string // content of the data directory's nats-credential, if any
		explicit           string // content of --nats-credential-file, if any
		wantToken, wantErr string
		wantCreds          bool
		wantCreated        bool
	}{
		{name: "in-process only: none"},
		{name: "a listener creates one", listen: "127.0.0.1:0", wantCreated: true},
		{name: "a listener reuses it", listen: "127.0.0.1:0", file: token + "\n", wantToken: token},
		{name: "a listener with --nats-credential-file", listen: "127.0.0.1:0", explicit: token, wantToken: token},
		{name: "--nats-url reads the data directory's", url: "nats://127.0.0.1:4222", file: token, wantToken: token},
		{name: "--nats-url without one presents none", url: "nats://127.0.0.1:4222"},
		{name: "--nats-url with a .creds file", url: "nats://127.0.0.1:4222", explicit: creds, wantCreds: true},
		{name: "the embedded server takes no .creds file", listen: "127.0.0.1:0", explicit: creds,
			wantErr: "nats credential: a NATS credentials file is for --nats-url; the embedded server needs a token"},
		{name: "a short token is refused", listen: "127.0.0.1:0", file: "short",
			wantErr: "nats credential: a token of at least 32 characters and no spaces is required"},
		{name: "a token with spaces is refused", url: "nats://127.0.0.1:4222", explicit: "a token of at least thirty-two characters",
			wantErr: "nats credential: a token of at least 32 characters and no spaces is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &app{cfg: serveConfig{DataDir: t.TempDir(), NATSURL: tt.url, NATSListen: tt.listen}}
			path := filepath.Join(a.cfg.DataDir, natsCredentialFile)
			if tt.file != "" {
				require.NoError(t, os.WriteFile(path, []byte(tt.file), 0o600))
			}
			if tt.explicit != "" {
				a.cfg.NATSCredentialFile = filepath.Join(t.TempDir(), "given")
				require.NoError(t, os.WriteFile(a.cfg.NATSCredentialFile, []byte(tt.explicit), 0o600))
			}
			token, credsFile, err := a.natsCredential()
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.wantCreds {
				require.Equal(t, a.cfg.NATSCredentialFile, credsFile)
			} else {
				require.Empty(t, credsFile)
			}
			if !tt.wantCreated {
				require.Equal(t, tt.wantToken, token)
				return
			}
			require.Len(t, token, 43)
			fi, err := os.Stat(path)
			require.NoError(t, err)
			require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
			again, _, err := a.natsCredential()
			require.NoError(t, err)
			require.Equal(t, token, again, "the next start reads the same")
		})
	}
	a := &app{cfg: serveConfig{DataDir: t.TempDir(), NATSListen: "127.0.0.1:0", NATSCredentialFile: filepath.Join(t.TempDir(), "missing")}}
	_, _, err := a.natsCredential()
	require.ErrorContains(t, err, "nats credential: open ", "a named file must exist")
}

// The perimeter's flags, with their HNSEC_* twins.
func TestPerimeterFlags(t *testing.T) {
	parse := func(args ...string) serveConfig {
		t.Helper()
		var cfg serveConfig
		fs := flag.NewFlagSet("test", flag.ContinueOnError)
		cfg.registerFlags(fs)
		require.NoError(t, ff.Parse(fs, args, ff.WithEnvVarPrefix("HNSEC")))
		return cfg
	}
	cfg := parse()
	require.Empty(t, cfg.ClientAuth.TrustedProxies, "no proxy is trusted by default")
	require.Empty(t, cfg.OpsAddr)
	require.Empty(t, cfg.NATSCredentialFile)
	require.Empty(t, cfg.STS.PublicURL)

	cfg = parse("--trusted-proxy", "10.0.0.0/8,192.0.2.1", "--trusted-proxy", "fd00::/8", "--ops-addr", "127.0.0.1:9100",
		"--nats-credential-file", "/run/secrets/nats", "--public-url", "https://sikkerhet.helsenorge.no")
	require.Equal(t, "10.0.0.0/8,192.0.2.1/32,fd00::/8", cfg.ClientAuth.TrustedProxies.String())
	require.Equal(t, "127.0.0.1:9100", cfg.OpsAddr)
	require.Equal(t, "/run/secrets/nats", cfg.NATSCredentialFile)
	require.Equal(t, "https://sikkerhet.helsenorge.no", cfg.STS.PublicURL)

	t.Setenv("HNSEC_TRUSTED_PROXY", "10.0.0.0/8, 2001:db8::/32")
	t.Setenv("HNSEC_OPS_ADDR", "127.0.0.1:9101")
	t.Setenv("HNSEC_NATS_CREDENTIAL_FILE", "/run/secrets/nats-env")
	cfg = parse()
	require.Equal(t, "10.0.0.0/8,2001:db8::/32", cfg.ClientAuth.TrustedProxies.String())
	require.Equal(t, "127.0.0.1:9101", cfg.OpsAddr)
	require.Equal(t, "/run/secrets/nats-env", cfg.NATSCredentialFile)

	var bad serveConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	bad.registerFlags(fs)
	require.ErrorContains(t, fs.Parse([]string{"--trusted-proxy", "proxy.example"}), `"proxy.example" is not an address or a network in CIDR notation`)
}
