package main

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/pkg/publicurl"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/services/gateway"
)

// The perimeter of a process: what it opens to the network besides the services' own ports, and what it
// believes of the outside. The embedded NATS listener requires a token, the public URL comes from
// configuration rather than from requests, and metrics and reflection can move to an ops listener.

// natsCredentialFile is the default --nats-credential-file, in the data directory.
const natsCredentialFile = "nats-credential"

// natsCredential returns what the NATS connection presents and the embedded listener requires: a token,
// or for --nats-url a NATS credentials file. It reads --nats-credential-file, else
// <data-dir>/nats-credential, which a process with --nats-listen creates (mode 0600) on its first start;
// a process with only the in-process connection needs none.
func (a *app) natsCredential() (token, credsFile string, err error) {
	path, explicit := a.cfg.NATSCredentialFile, a.cfg.NATSCredentialFile != ""
	if !explicit {
		if a.cfg.NATSURL == "" && a.cfg.NATSListen == "" {
			return "", "", nil
		}
		path = filepath.Join(a.cfg.DataDir, natsCredentialFile)
	}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !explicit && a.cfg.NATSURL == "":
		token = secrets.New()
		return token, "", os.WriteFile(path, []byte(token+"\n"), 0o600)
	case errors.Is(err, os.ErrNotExist) && !explicit:
		return "", "", nil // --nats-url with credentials of its own, or a server that asks for none
	case err != nil:
		return "", "", fmt.Errorf("nats credential: %w", err)
	case bytes.Contains(b, []byte("BEGIN NATS USER JWT")):
		if a.cfg.NATSURL == "" {
			return "", "", errors.New("nats credential: a NATS credentials file is for --nats-url; the embedded server needs a token")
		}
		return "", path, nil
	}
	token = strings.TrimSpace(string(b))
	if len(token) < 32 || strings.ContainsAny(token, " \t\r\n") {
		return "", "", errors.New("nats credential: a token of at least 32 characters and no spaces is required")
	}
	return token, "", nil
}

// openHTTP opens --http-addr before the services start, so that the public URL they name defaults to the
// address it is bound to, and checks --public-url. The public URL is --public-url, else the issuer when it
// is a URL, else the listen address (https with --http-tls-cert): right on loopback in dev, and to be set
// in production.
func (a *app) openHTTP() error {
	lis, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("--http-addr: %w", err)
	}
	a.httpLis = lis
	a.closers = append(a.closers, func() error {
		_ = lis.Close() // the HTTP server closes it when it shuts down
		return nil
	})
	switch {
	case a.cfg.STS.PublicURL != "":
		return publicurl.Check(a.cfg.STS.PublicURL)
	case publicurl.IsURL(a.cfg.STS.Issuer):
		return nil
	}
	a.cfg.STS.PublicURL = publicurl.Listen(lis.Addr().String(), a.cfg.HTTPTLSCert != "")
	wanted := wantedServices(a.cfg.Services)
	if !a.cfg.Dev && (slices.Contains(wanted, "sts") || slices.Contains(wanted, "introspection")) {
		a.log.Warn("no --public-url and the issuer is no URL: metadata and client assertion audiences name the listen address",
			"public_url", a.cfg.STS.PublicURL)
	}
	return nil
}

// publicMetrics is what serves /metrics on --http-addr: the process's metrics, or nil when --ops-addr
// serves them.
func (a *app) publicMetrics() prometheus.Gatherer {
	if a.cfg.OpsAddr != "" {
		return nil
	}
	return a.metrics
}

// listenOps opens --ops-addr, when set, for /healthz, /readyz, /metrics and gRPC reflection (with the
// health service), which then leave the public ports. It speaks HTTP/1.1 and plaintext HTTP/2 on one port,
// gRPC on the latter: keep it on an internal network.
func (a *app) listenOps() error {
	if a.cfg.OpsAddr == "" {
		return nil
	}
	lis, err := net.Listen("tcp", a.cfg.OpsAddr)
	if err != nil {
		return fmt.Errorf("--ops-addr: %w", err)
	}
	rpc := grpc.NewServer()
	grpcx.Reflection(rpc, a.grpcSrv)
	healthpb.RegisterHealthServer(rpc, a.health)
	web := gateway.Ops(a.public, a.metrics)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
				rpc.ServeHTTP(w, r)
				return
			}
			web.ServeHTTP(w, r)
		})}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	a.actors = append(a.actors, actor{func() error {
		if err := srv.Serve(lis); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("--ops-addr: %w", err)
		}
		return nil
	}, func(error) { _ = srv.Close() }})
	return nil
}
