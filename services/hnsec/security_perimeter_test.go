package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/clientauth"
	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/services/registry"
)

// The perimeter, tried as an attacker would (issue 14, "Nothing inside trusts the outside"): each test is
// an attack on a production (non-dev) server that must be refused. The NATS listener admits no client
// without the token; the throttle's caller address is the connection's, or what a trusted forwarder says;
// URLs and assertion audiences come from configuration, not from Host headers; metrics and reflection
// can leave the public ports.

// newProductionServer starts a server without dev mode (no demo data, only the bootstrap operator), with a
// key-encryption key of its own as production requires.
func newProductionServer(t *testing.T, mods ...func(*serveConfig)) *testServer {
	t.Helper()
	kek := filepath.Join(t.TempDir(), "kek")
	require.NoError(t, os.WriteFile(kek, []byte(base64.StdEncoding.EncodeToString(secrets.NewKey())), 0o600))
	return newTestServer(t, append([]func(*serveConfig){func(c *serveConfig) { c.Dev, c.KEKFile = false, kek }}, mods...)...)
}

// operatorCredentials are the bootstrap operator's client credentials (operator.json), a client like any
// other at the token endpoint.
func (s *testServer) operatorCredentials() registry.Credentials {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, registry.OperatorFile))
	require.NoError(s.t, err)
	var c registry.Credentials
	require.NoError(s.t, json.Unmarshal(b, &c))
	return c
}

// natsToken presents the token of the embedded NATS listener of the server on dataDir.
func natsToken(t testing.TB, dataDir string) nats.Option {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dataDir, natsCredentialFile))
	require.NoError(t, err)
	return nats.Token(strings.TrimSpace(string(b)))
}

// trustLoopbackProxy names loopback 127.0.0.1 as a trusted proxy: the test's requests through it stand for
// a load balancer's.
func trustLoopbackProxy(c *serveConfig) {
	c.ClientAuth.FailureBurst, c.ClientAuth.FailureRefill = 3, time.Minute
	if err := c.ClientAuth.TrustedProxies.Set("127.0.0.1/32"); err != nil {
		panic(err)
	}
}

// tokenFrom asks for a token with client_secret_post from the loopback address src (127.0.0.x), with the
// X-Forwarded-For header xff when set.
func (s *testServer) tokenFrom(src, xff, id, secret string) response {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+"/sts/Token",
		strings.NewReader("grant_type=client_credentials&client_id="+id+"&client_secret="+url.QueryEscape(secret)))
	require.NoError(s.t, err)
	req.Header.Set("Content-Type", form)
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	client := &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	require.NoError(s.t, json.Unmarshal(raw, &r.body), "%s", raw)
	return r
}

// Nobody reaches the embedded NATS listener without the token from the data directory: not to read the
// change streams, not to publish forged events (a forged client-changed or PVK event would drop caches or
// feed subscribers). The services' own in-process connection, and other processes with the token, work.
func TestPerimeterNATSListenerRefusesUnauthenticatedClients(t *testing.T) {
	s := newProductionServer(t, func(c *serveConfig) { c.NATSListen = "127.0.0.1:0" })
	require.NotEmpty(t, s.natsURL)
	// The server's own connection sees whatever would arrive.
	watch, err := s.nc.SubscribeSync("hnsec.registry.client.changed")
	require.NoError(t, err)
	check, err := s.nc.SubscribeSync("hnsec.perimeter.check")
	require.NoError(t, err)
	require.NoError(t, s.nc.Flush())

	for name, opts := range map[string][]nats.Option{
		"no credentials":      nil,
		"a guessed token":     {nats.Token("a-guessed-token-of-at-least-32-characters")},
		"a user and password": {nats.UserInfo("hnsec", "hnsec")},
	} {
		nc, err := nats.Connect(s.natsURL, append(opts, nats.NoReconnect(), nats.Timeout(5*time.Second))...)
		if nc != nil {
			nc.Close()
		}
		require.ErrorIs(t, err, nats.ErrAuthorization, name)
	}

	// The raw protocol: subscribe to everything and publish a forged event without credentials.
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.natsURL, "nats://"))
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))
	in := bufio.NewReader(conn)
	info, err := in.ReadString('\n')
	require.NoError(t, err)
	require.Contains(t, info, `"auth_required":true`)
	forged := guid.New()
	_, err = fmt.Fprintf(conn, "CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB > 1\r\nPUB hnsec.registry.client.changed %d\r\n%s\r\nPING\r\n", len(forged), forged)
	require.NoError(t, err)
	answer, _ := io.ReadAll(in) // until the server closes the connection
	require.Contains(t, string(answer), "-ERR 'Authorization Violation'")
	require.NotContains(t, string(answer), "PONG")
	require.NotContains(t, string(answer), "MSG ")
	_, err = watch.NextMsg(300 * time.Millisecond)
	require.ErrorIs(t, err, nats.ErrTimeout, "no forged event arrived")

	// The credential: generated on the first start, readable by the owner only, never logged.
	path := filepath.Join(s.cfg.DataDir, natsCredentialFile)
	fi, err := os.Stat(path)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	token, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NotContains(t, s.logs.String(), strings.TrimSpace(string(token)))

	// With it another process reads and publishes, and the in-process connection keeps working.
	nc, err := nats.Connect(s.natsURL, natsToken(t, s.cfg.DataDir))
	require.NoError(t, err)
	defer nc.Close()
	require.NoError(t, nc.Publish("hnsec.perimeter.check", []byte("with the token")))
	m, err := check.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "with the token", string(m.Data))
	read, err := nc.SubscribeSync("hnsec.perimeter.read")
	require.NoError(t, err)
	require.NoError(t, nc.Flush())
	require.NoError(t, s.nc.Publish("hnsec.perimeter.read", []byte("to the token holder")))
	m, err = read.NextMsg(5 * time.Second)
	require.NoError(t, err)
	require.Equal(t, "to the token holder", string(m.Data))
	op := s.operatorCredentials()
	require.Equal(t, http.StatusOK, s.tokenForm(op.ClientID, op.ClientSecret).status)
}

// X-Forwarded-For from a caller that is no trusted proxy is a claim, not an address: rotating it, over REST
// or as gRPC metadata on the public port (with a guessed forwarder token), gets no fresh throttle bucket.
func TestPerimeterThrottleIsNotDefeatedByRotatingXForwardedFor(t *testing.T) {
	s := newProductionServer(t, func(c *serveConfig) { c.ClientAuth.FailureBurst, c.ClientAuth.FailureRefill = 3, time.Minute })
	op := s.operatorCredentials()
	for i := range 3 {
		r := s.tokenFrom("127.0.0.1", fmt.Sprintf("198.51.100.%d", i), op.ClientID, "guess")
		require.Equal(t, http.StatusUnauthorized, r.status, "%s", r.raw)
	}
	r := s.tokenFrom("127.0.0.1", "198.51.100.99", op.ClientID, "guess")
	require.Equal(t, http.StatusTooManyRequests, r.status, "%s", r.raw)

	conn, err := grpcx.Dial(s.cfg.GRPCAddr, "") // a public gRPC client: no internal credential
	require.NoError(t, err)
	defer conn.Close()
	victim := guid.New()
	call := func(i int) error {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-for", fmt.Sprintf("203.0.113.%d", i),
			clientauth.ForwarderMetadataKey, "a-guessed-forwarder-token")
		_, err := stsv1.NewTokenServiceClient(conn).Token(ctx, &stsv1.TokenRequest{GrantType: "client_credentials", ClientId: victim, ClientSecret: "guess"})
		return err
	}
	for i := range 3 {
		require.Equal(t, apierr.InvalidClient, apierr.FromGRPC(call(i)).Kind)
	}
	require.Equal(t, apierr.TooManyRequests, apierr.FromGRPC(call(3)).Kind, "a new x-forwarded-for is no new address")
}

// A client_id that keeps failing from one address is not locked out at another: neither at another
// connection address nor behind a trusted proxy that names another client address.
func TestPerimeterFailuresAtOneAddressDoNotLockOutAnother(t *testing.T) {
	s := newProductionServer(t, trustLoopbackProxy)
	op := s.operatorCredentials()

	// An attacker behind the load balancer guesses the operator's secret until throttled.
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, s.tokenFrom("127.0.0.1", "203.0.113.66", op.ClientID, "guess").status)
	}
	require.Equal(t, http.StatusTooManyRequests, s.tokenFrom("127.0.0.1", "203.0.113.66", op.ClientID, op.ClientSecret).status,
		"the attacker's address waits, even with the right secret")

	// The real client, behind the same load balancer at its own address, and one connecting directly,
	// are not locked out.
	r := s.tokenFrom("127.0.0.1", "198.51.100.20", op.ClientID, op.ClientSecret)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	r = s.tokenFrom("127.0.0.2", "", op.ClientID, op.ClientSecret)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)

	// The same from a direct attacker at 127.0.0.3.
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, s.tokenFrom("127.0.0.3", "", op.ClientID, "guess").status)
	}
	require.Equal(t, http.StatusTooManyRequests, s.tokenFrom("127.0.0.3", "", op.ClientID, "guess").status)
	require.Equal(t, http.StatusOK, s.tokenFrom("127.0.0.2", "", op.ClientID, op.ClientSecret).status)
}

// A trusted proxy's X-Forwarded-For names the client: each client behind it has its own bucket, and the
// entry the proxy appended counts, not what the client wrote before it. An untrusted peer's does not count.
func TestPerimeterTrustedProxyXForwardedForIsHonoured(t *testing.T) {
	s := newProductionServer(t, trustLoopbackProxy)
	op := s.operatorCredentials()
	for range 3 {
		require.Equal(t, http.StatusUnauthorized, s.tokenFrom("127.0.0.1", "203.0.113.7", op.ClientID, "guess").status)
	}
	require.Equal(t, http.StatusTooManyRequests, s.tokenFrom("127.0.0.1", "203.0.113.7", op.ClientID, "guess").status)
	require.Equal(t, http.StatusTooManyRequests, s.tokenFrom("127.0.0.1", "10.9.9.9, 203.0.113.7", op.ClientID, "guess").status,
		"the proxy appended 203.0.113.7; the client's own entry before it counts for nothing")
	require.Equal(t, http.StatusUnauthorized, s.tokenFrom("127.0.0.1", "203.0.113.8", op.ClientID, "guess").status,
		"another client behind the proxy has its own bucket")

	// 127.0.0.2 is no trusted proxy: its X-Forwarded-For is ignored, so rotating it does not help.
	for i := range 3 {
		require.Equal(t, http.StatusUnauthorized, s.tokenFrom("127.0.0.2", fmt.Sprintf("198.51.100.%d", i), op.ClientID, "guess").status)
	}
	require.Equal(t, http.StatusTooManyRequests, s.tokenFrom("127.0.0.2", "198.51.100.50", op.ClientID, "guess").status)
}

// A private_key_jwt assertion made for another server (its aud that server's token endpoint) is refused
// here even when the request's Host and X-Forwarded-Host name that server: audiences come from
// configuration (the issuer, the public URL), never from request headers.
func TestPerimeterForeignAssertionAudienceWithForgedHostIsRefused(t *testing.T) {
	s := newProductionServer(t) // no --public-url, a bare issuer: the public URL is the listen address
	op := s.operatorCredentials()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	kid, err := s.addKey(op.ClientID, key.Public(), "RS256")
	require.NoError(t, err)
	send := func(aud string, header http.Header, host string) response {
		body := "grant_type=client_credentials&client_assertion_type=" + url.QueryEscape(clientauth.AssertionType) +
			"&client_assertion=" + assertion(t, jwt.SigningMethodRS256, key, kid, op.ClientID, aud, nil)
		req, err := http.NewRequest(http.MethodPost, s.base+"/sts/Token", strings.NewReader(body))
		require.NoError(t, err)
		for k, v := range header {
			req.Header[k] = v
		}
		req.Header.Set("Content-Type", form)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		r := response{status: resp.StatusCode}
		r.raw, err = io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.NoError(t, json.Unmarshal(r.raw, &r.body), "%s", r.raw)
		return r
	}
	for _, tt := range []struct {
		name, aud, host string
		header          http.Header
	}{
		{"Host", "http://evil.example/sts/Token", "evil.example", nil},
		{"X-Forwarded-Host", "http://evil.example/sts/Token", "", http.Header{"X-Forwarded-Host": {"evil.example"}}},
		{"both, https", "https://evil.example/sts/Token", "evil.example", http.Header{"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}}},
	} {
		r := send(tt.aud, tt.header, tt.host)
		require.Equal(t, http.StatusUnauthorized, r.status, "%s: %s", tt.name, r.raw)
		require.Equal(t, "client assertion aud must name this issuer or the endpoint", r.body["error_description"], tt.name)
	}
	r := send(s.base+"/sts/Token", http.Header{"X-Forwarded-Host": {"evil.example"}}, "evil.example")
	require.Equal(t, http.StatusOK, r.status, "the configured token endpoint is an audience, whatever the headers: %s", r.raw)
	r = send("sikkerhet.helsenorge.no", nil, "")
	require.Equal(t, http.StatusOK, r.status, "and so is the issuer: %s", r.raw)
}

// The RFC 8414 metadata names the configured endpoints whatever Host and X-Forwarded-Host say, and https
// when the gateway serves TLS.
func TestPerimeterMetadataIgnoresForgedHost(t *testing.T) {
	forged := http.Header{"X-Forwarded-Host": {"evil.example"}, "X-Forwarded-Proto": {"https"}}
	metadataOf := func(t *testing.T, client *http.Client, base string) map[string]any {
		req, err := http.NewRequest(http.MethodGet, base+"/.well-known/oauth-authorization-server", nil)
		require.NoError(t, err)
		req.Header, req.Host = forged.Clone(), "evil.example"
		resp, err := client.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		raw, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", raw)
		require.NotContains(t, string(raw), "evil.example")
		var m map[string]any
		require.NoError(t, json.Unmarshal(raw, &m))
		return m
	}
	endpoints := func(base string) map[string]any {
		return map[string]any{"token_endpoint": base + "/sts/Token", "jwks_uri": base + "/sts/.well-known/jwks.json",
			"introspection_endpoint": base + "/sts/introspect", "revocation_endpoint": base + "/sts/revoke"}
	}
	requireEndpoints := func(t *testing.T, m map[string]any, base string) {
		for k, want := range endpoints(base) {
			require.Equal(t, want, m[k], k)
		}
	}

	t.Run("the listen address by default", func(t *testing.T) {
		s := newProductionServer(t)
		requireEndpoints(t, metadataOf(t, http.DefaultClient, s.base), s.base)
	})
	t.Run("--public-url", func(t *testing.T) {
		s := newProductionServer(t, func(c *serveConfig) { c.STS.PublicURL = "https://sts.test.example/" })
		requireEndpoints(t, metadataOf(t, http.DefaultClient, s.base), "https://sts.test.example")
	})
	t.Run("https with TLS", func(t *testing.T) {
		certs := t.TempDir()
		require.NoError(t, writeDevCerts(certs, []string{"127.0.0.1"}, time.Now()))
		s := newProductionServer(t, func(c *serveConfig) {
			c.HTTPTLSCert, c.HTTPTLSKey = filepath.Join(certs, devCertFile), filepath.Join(certs, devCertKeyFile)
		})
		ca, err := os.ReadFile(filepath.Join(certs, devCAFile))
		require.NoError(t, err)
		pool := x509.NewCertPool()
		require.True(t, pool.AppendCertsFromPEM(ca))
		client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}}
		defer client.CloseIdleConnections()
		base := "https://" + strings.TrimPrefix(s.base, "http://")
		requireEndpoints(t, metadataOf(t, client, base), base)
	})
	t.Run("a bad --public-url stops the start", func(t *testing.T) {
		var cfg serveConfig
		cfg.registerFlags(flag.NewFlagSet("test", flag.ContinueOnError))
		cfg.HTTPAddr, cfg.GRPCAddr, cfg.DataDir = "127.0.0.1:0", "127.0.0.1:0", t.TempDir()
		cfg.STS.PublicURL = "evil.example"
		log, _ := newTestLogger(t)
		_, err := newApp(context.Background(), cfg, log)
		require.EqualError(t, err, "--public-url must be an absolute http or https URL, like https://sikkerhet.helsenorge.no")
	})
}

// With --ops-addr, /metrics and gRPC reflection leave the public ports for the ops listener.
func TestPerimeterOpsListenerTakesMetricsAndReflection(t *testing.T) {
	ops := freeAddr(t)
	s := newProductionServer(t, func(c *serveConfig) { c.OpsAddr = ops })

	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(body)
	}
	code, body := get(s.base + "/metrics")
	require.Equal(t, http.StatusNotFound, code, "no metrics on the public port")
	require.NotContains(t, body, "hnsec_")
	code, _ = get(s.base + "/healthz")
	require.Equal(t, http.StatusOK, code)
	public, err := grpcx.Dial(s.cfg.GRPCAddr, "")
	require.NoError(t, err)
	defer public.Close()
	require.Equal(t, codes.Unimplemented, status.Code(listServices(t, public, nil)), "no reflection on the public gRPC port")

	code, body = get("http://" + ops + "/metrics")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "hnsec_")
	code, _ = get("http://" + ops + "/readyz")
	require.Equal(t, http.StatusOK, code)
	opsConn, err := grpcx.Dial(ops, "")
	require.NoError(t, err)
	defer opsConn.Close()
	var names []string
	require.NoError(t, listServices(t, opsConn, &names))
	require.Subset(t, names, []string{"hnsec.sts.v1.TokenService", "hnsec.registry.v1.ClientRegistryService", "grpc.health.v1.Health"})
}

// listServices asks a server's reflection service for its services, into names when set.
func listServices(t *testing.T, conn grpc.ClientConnInterface, names *[]string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		return err
	}
	// A server without the method may end the stream before the request is sent: Send then says io.EOF,
	// and Recv has the status.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	r, err := stream.Recv()
	if err != nil {
		return err
	}
	for _, svc := range r.GetListServicesResponse().GetService() {
		if names != nil {
			*names = append(*names, svc.GetName())
		}
	}
	return nil
}
