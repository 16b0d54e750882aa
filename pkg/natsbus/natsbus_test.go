package natsbus

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

func TestSyncFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    Sync
		wantErr string
	}{
		{in: "always", want: 0},
		{in: "1s", want: Sync(time.Second)},
		{in: "250ms", want: Sync(250 * time.Millisecond)},
		{in: "0s", wantErr: `want always or a positive duration, got "0s"`},
		{in: "-1s", wantErr: `want always or a positive duration, got "-1s"`},
		{in: "sometimes", wantErr: `want always or a positive duration, got "sometimes"`},
	}
	for _, tc := range tests {
		var s Sync = 7
		err := s.Set(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Set(%q) = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || s != tc.want {
			t.Errorf("Set(%q) = %v, %v; want %v", tc.in, s, err, tc.want)
		}
		if tc.in != "1s" && tc.in != "always" {
			continue
		}
		if got := s.String(); got != tc.in {
			t.Errorf("String() = %q, want %q", got, tc.in)
		}
	}
}

const testToken = "a-token-of-at-least-thirty-two-characters"

// The embedded server's listener admits only clients presenting the token; the in-process connection and
// other processes' buses (URL and Token) present it.
func TestEmbeddedListenerNeedsTheToken(t *testing.T) {
	_, err := Open(Config{DataDir: t.TempDir(), Name: "test", Listen: "127.0.0.1:0"})
	require.EqualError(t, err, "embedded nats: a listener needs a token (no client may connect without one)")

	bus, err := Open(Config{DataDir: t.TempDir(), Name: "test", Listen: "127.0.0.1:0", Token: testToken})
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close() })
	addr := bus.ClientURL()
	require.NotContains(t, addr, testToken)
	hostPort := strings.TrimPrefix(addr, "nats://")

	refused := []struct {
		name string
		url  string
		opts []nats.Option
	}{
		{"no credentials", addr, nil},
		{"a wrong token", addr, []nats.Option{nats.Token("a-wrong-token-of-at-least-thirty-two-chars")}},
		{"a wrong token in the URL", "nats://guess@" + hostPort, nil},
		{"a user and password", "nats://hnsec:" + testToken + "@" + hostPort, nil},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := nats.Connect(tt.url, append(tt.opts, nats.NoReconnect())...)
			if nc != nil {
				nc.Close()
			}
			require.ErrorIs(t, err, nats.ErrAuthorization)
		})
	}

	admitted := []struct {
		name string
		cfg  Config
	}{
		{"the token", Config{URL: addr, Token: testToken}},
		{"the token in the URL", Config{URL: "nats://" + testToken + "@" + hostPort}},
		{"the URL's own credentials win over Token", Config{URL: "nats://" + testToken + "@" + hostPort, Token: "ignored"}},
	}
	for _, tt := range admitted {
		t.Run(tt.name, func(t *testing.T) {
			other, err := Open(tt.cfg)
			require.NoError(t, err)
			defer other.Close()
			sub, err := bus.Conn.SubscribeSync("hello")
			require.NoError(t, err)
			defer sub.Unsubscribe()
			require.NoError(t, bus.Conn.Flush())
			require.NoError(t, other.Conn.Publish("hello", []byte("from another process")))
			m, err := sub.NextMsg(5 * time.Second)
			require.NoError(t, err, "the in-process connection works with the token too")
			require.Equal(t, "from another process", string(m.Data))
		})
	}

	_, err = Open(Config{URL: "nats://guess-of-at-least-thirty-two-characters@" + hostPort})
	require.Error(t, err)
	require.NotContains(t, err.Error(), "guess", "errors name the server, not the credential")
	require.Contains(t, err.Error(), "nats://REDACTED@"+hostPort)
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                    "nats://127.0.0.1:4222",
		"nats://tok@127.0.0.1:4222":                "nats://REDACTED@127.0.0.1:4222",
		"nats://u:p@a:1,nats://b:2,tls://u:p@@c:3": "nats://REDACTED@a:1,nats://b:2,tls://REDACTED@c:3",
		"tok@127.0.0.1:4222":                       "REDACTED@127.0.0.1:4222",
	} {
		require.Equal(t, want, redact(in), in)
	}
}

// The functions registered with OnReconnect run each time the connection comes back, until removed.
func TestOnReconnect(t *testing.T) {
	server, err := Open(Config{DataDir: t.TempDir(), Name: "test", Listen: "127.0.0.1:0", Token: testToken})
	require.NoError(t, err)
	t.Cleanup(func() { _ = server.Close() })
	bus, err := Open(Config{URL: server.ClientURL(), Token: testToken, Name: "test"})
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close() })
	calls := make(chan string, 10)
	removeA := bus.OnReconnect(func() { calls <- "a" })
	bus.OnReconnect(func() { calls <- "b" })
	got := func() []string {
		var out []string
		for len(out) < 2 {
			select {
			case c := <-calls:
				out = append(out, c)
			case <-time.After(10 * time.Second):
				return out
			}
		}
		return out
	}
	require.NoError(t, bus.Conn.ForceReconnect())
	require.ElementsMatch(t, []string{"a", "b"}, got())
	removeA()
	require.NoError(t, bus.Conn.ForceReconnect())
	select {
	case c := <-calls:
		require.Equal(t, "b", c)
	case <-time.After(10 * time.Second):
		t.Fatal("no call after the second reconnect")
	}
	select {
	case c := <-calls:
		t.Fatalf("%q called after it was removed", c)
	case <-time.After(200 * time.Millisecond):
	}
}
