package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
)

// Dev mode lets webhooks call this machine over http unless a flag says otherwise; production stays strict.
func TestDevWebhookDefaults(t *testing.T) {
	for _, tc := range []struct {
		name              string
		dev               bool
		cidrs, hosts      []string
		wantCIDRs, wantHT []string
	}{
		{"dev", true, nil, nil, []string{"127.0.0.0/8", "::1/128"}, []string{"127.0.0.1", "localhost", "::1"}},
		{"production", false, nil, nil, nil, nil},
		{"dev with a network of its own", true, []string{"10.1.0.0/16"}, nil, []string{"10.1.0.0/16"}, nil},
		{"dev with an http host of its own", true, nil, []string{"receiver.test"}, nil, []string{"receiver.test"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c serveConfig
			c.Dev, c.PVK.WebhookAllowCIDRs, c.PVK.WebhookAllowHTTPHosts = tc.dev, tc.cidrs, tc.hosts
			devWebhookDefaults(&c)
			require.Equal(t, tc.wantCIDRs, []string(c.PVK.WebhookAllowCIDRs))
			require.Equal(t, tc.wantHT, []string(c.PVK.WebhookAllowHTTPHosts))
		})
	}
}

// A second process on the same data directory is refused at start, at once and clearly; the directory is
// free again once the first stops.
func TestSecondProcessOnTheDataDirectoryIsRefused(t *testing.T) {
	s := newTestServer(t)
	cfg := s.cfg
	cfg.HTTPAddr, cfg.GRPCAddr = "127.0.0.1:0", "127.0.0.1:0"
	log, _ := newTestLogger(t)
	_, err := newApp(context.Background(), cfg, log)
	require.ErrorIs(t, err, errDataDirInUse)
	require.EqualError(t, err, "start nats: "+cfg.DataDir+": "+errDataDirInUse.Error())
	s.stop()
	startTestServer(t, cfg)
}

// --log-format decides; without it a person at a terminal in dev mode gets text, everything else JSON.
func TestLogFormatDefault(t *testing.T) {
	for _, tc := range []struct {
		flag     string
		dev, tty bool
		want     string
	}{
		{"", true, true, "text"},
		{"", true, false, "json"},
		{"", false, true, "json"},
		{"json", true, true, "json"},
		{"text", false, false, "text"},
	} {
		c := serveConfig{LogFormat: tc.flag, Dev: tc.dev}
		require.Equal(t, tc.want, c.logFormat(tc.tty), "%+v", tc)
	}
}

// The server says why it shuts down.
func TestShutdownIsLogged(t *testing.T) {
	s := newTestServer(t)
	s.stop()
	require.Contains(t, s.logs.String(), `"msg":"shutting down","cause":"context canceled"`)
}
