package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof" // profiles on --debug-addr only: the REST gateway has its own mux
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/run"
	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	dispatcherv1 "github.com/hnsec/hnsec/gen/hnsec/dispatcher/v1"
	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/clientauth"
	"github.com/hnsec/hnsec/pkg/flagx"
	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/obs"
	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/subscriber"
	"github.com/hnsec/hnsec/services/dispatcher"
	"github.com/hnsec/hnsec/services/gateway"
	"github.com/hnsec/hnsec/services/introspection"
	"github.com/hnsec/hnsec/services/pvk"
	"github.com/hnsec/hnsec/services/registry"
	"github.com/hnsec/hnsec/services/standin"
	"github.com/hnsec/hnsec/services/sts"
)

// serveConfig is the configuration of `hnsec serve`: the process's own flags and each service's.
type serveConfig struct {
	HTTPAddr string
	GRPCAddr string
	PeerAddr string
	// Peers name where each service this process does not run listens (--peer sts=host:port).
	Peers flagx.StringList
	// GRPCTLS* are the mutual TLS of gRPC; HTTPTLS* the TLS of the REST gateway.
	GRPCTLSCert, GRPCTLSKey, GRPCTLSCA string
	HTTPTLSCert, HTTPTLSKey            string
	DataDir                            string
	DatabaseURL                        string
	NATSURL                            string
	NATSListen                         string
	NATSCredentialFile                 string
	NATSSync                           natsbus.Sync
	// NATSNamespace prefixes subjects, streams and buckets (--nats-namespace).
	NATSNamespace string
	// DatabaseSchemaPrefix, DatabaseStatementTimeout and DatabaseMaxConns tune PostgreSQL.
	DatabaseSchemaPrefix     string
	DatabaseStatementTimeout time.Duration
	DatabaseMaxConns         int
	Services                 string
	Dev                      bool
	LogLevel                 string
	LogFormat                string
	AccessLog                bool
	// accessLog is the access log's logger (buffered; see serveCommand); nil logs it with the process's.
	accessLog              *slog.Logger
	DebugAddr              string
	OpsAddr                string
	IntrospectionCacheAge  time.Duration
	KEKFile                string
	InternalCredentialFile string
	ClientAuth             clientauth.Config
	Registry               registry.Config
	PVK                    pvk.Config
	Dispatcher             dispatcher.Config
	STS                    sts.Config
	// Standin configures the dev-only stand-ins (--standin-idp; --dev turns them on too).
	Standin standin.Config
	// ShutdownTimeout bounds a shutdown's wait for in-flight REST requests and gRPC calls (see
	// shutdownDeadline).
	ShutdownTimeout time.Duration
}

func (c *serveConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http-addr", "127.0.0.1:8080", "REST gateway listen address (a process without the gateway serves /healthz, /readyz and /metrics there)")
	fs.StringVar(&c.GRPCAddr, "grpc-addr", "127.0.0.1:9090", "gRPC listen address")
	fs.StringVar(&c.PeerAddr, "peer-addr", "", "gRPC address of the services this process does not run and --peer does not name")
	fs.Var(&c.Peers, "peer", "gRPC address of a service this process does not run, as service=host:port (repeatable)")
	fs.StringVar(&c.GRPCTLSCert, "grpc-tls-cert", "", "certificate (PEM) for gRPC with mutual TLS between services (hnsec dev certs makes one)")
	fs.StringVar(&c.GRPCTLSKey, "grpc-tls-key", "", "key of --grpc-tls-cert")
	fs.StringVar(&c.GRPCTLSCA, "grpc-tls-ca", "", "CA (PEM) that signs every service's certificate; a caller presenting one is internal")
	fs.StringVar(&c.HTTPTLSCert, "http-tls-cert", "", "certificate (PEM) for HTTPS on --http-addr")
	fs.StringVar(&c.HTTPTLSKey, "http-tls-key", "", "key of --http-tls-cert")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "data directory (SQLite files, embedded NATS store, credentials)")
	c.registerDatabaseFlags(fs, 30*time.Second)
	fs.StringVar(&c.NATSURL, "nats-url", "", "external NATS URL (default: embedded NATS with an in-process connection)")
	fs.StringVar(&c.NATSListen, "nats-listen", "", "let other processes use the embedded NATS on this host:port, with the token of --nats-credential-file (default: in-process only)")
	fs.StringVar(&c.NATSCredentialFile, "nats-credential-file", "", "file holding the token the embedded NATS listener requires of every client and --nats-url connections present; for --nats-url it may be a NATS .creds file instead (default: <data-dir>/nats-credential, created on the first start with --nats-listen, read with --nats-url when it exists)")
	fs.StringVar(&c.NATSNamespace, "nats-namespace", "", "prefix of every NATS subject, stream and bucket, so several deployments share one NATS")
	c.NATSSync = natsbus.Sync(time.Second)
	fs.Var(&c.NATSSync, "nats-sync", "when JetStream writes reach the disk: always (before each acknowledgement) or the interval of background syncs; with --nats-url, the server's own setting (PVK keeps published changes in its outbox until then)")
	fs.StringVar(&c.Services, "services", "all", "services to run: all, or a comma-separated subset of "+strings.Join(serviceNames, ","))
	fs.BoolVar(&c.Dev, "dev", false, "dev mode: seed a demo vendor, organisation, client system and client, and print its credentials")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.BoolVar(&c.AccessLog, "access-log", true, "log a line for every REST request (method, path, status, duration, korrelasjonsId; never a body)")
	fs.StringVar(&c.LogFormat, "log-format", "", "log format: json, or text (key=value lines); default text in dev mode at a terminal, json otherwise")
	fs.StringVar(&c.KEKFile, "kek-file", "", "file holding the base64 key-encryption key that seals the key ring (or HNSEC_KEK with the key itself; dev mode generates <data-dir>/kek)")
	fs.StringVar(&c.InternalCredentialFile, "internal-credential-file", "", "file holding the credential services present to each other's internal RPCs (default: <data-dir>/internal-credential, created on the first start)")
	fs.DurationVar(&c.IntrospectionCacheAge, "introspection-cache-max-age", 5*time.Minute, "how long introspection trusts a cached answer at most (revocation events drop it sooner)")
	fs.StringVar(&c.DebugAddr, "debug-addr", "", "listen address for Go's pprof profiles (/debug/pprof/); off when empty")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", defaultShutdownTimeout, "how long a shutdown waits for in-flight REST requests and gRPC calls before it cuts them off; keep it below the orchestrator's grace period (Kubernetes: 30s), which also covers flushing queues and closing NATS and the databases")
	fs.StringVar(&c.OpsAddr, "ops-addr", "", "listen address for /metrics and gRPC reflection (and /healthz, /readyz, gRPC health), which then leave --http-addr and --grpc-addr; HTTP and plaintext gRPC on one port, for an internal network (default: none, the public ports serve them)")
	c.ClientAuth.RegisterFlags(fs)
	c.Registry.RegisterFlags(fs)
	c.PVK.RegisterFlags(fs)
	c.Dispatcher.RegisterFlags(fs)
	c.STS.RegisterFlags(fs)
	c.Standin.RegisterFlags(fs)
}

// registerDatabaseFlags registers the flags that choose and tune the database (serve and migrate).
func (c *serveConfig) registerDatabaseFlags(fs *flag.FlagSet, statementTimeout time.Duration) {
	fs.StringVar(&c.DatabaseURL, "database-url", "", "PostgreSQL URL, postgres://... (default: embedded SQLite in --data-dir)")
	fs.StringVar(&c.DatabaseSchemaPrefix, "database-schema-prefix", "", "prefix of each service's PostgreSQL schema (several deployments in one database)")
	fs.DurationVar(&c.DatabaseStatementTimeout, "database-statement-timeout", statementTimeout, "PostgreSQL statement timeout")
	fs.IntVar(&c.DatabaseMaxConns, "database-max-conns", 16, "PostgreSQL connections per service")
}

func serveCommand(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("hnsec serve", flag.ContinueOnError)
	var cfg serveConfig
	cfg.registerFlags(fs)
	return &ffcli.Command{
		Name:       "serve",
		ShortUsage: "hnsec serve [flags] (every flag also reads HNSEC_<FLAG>, e.g. HNSEC_HTTP_ADDR)",
		ShortHelp:  "run the services (all in one process by default)",
		FlagSet:    fs,
		Options:    []ff.Option{ff.WithEnvVarPrefix("HNSEC")},
		Exec: func(ctx context.Context, _ []string) error {
			format := cfg.logFormat(isTerminal(os.Stderr))
			log, err := obs.NewFormatLogger(os.Stderr, cfg.LogLevel, format)
			if err != nil {
				return err
			}
			if cfg.AccessLog {
				// The access log writes through a buffer: a write system call every 100ms, not per request.
				accessOut := obs.NewBufferedWriter(os.Stderr, 256<<10, 100*time.Millisecond)
				defer accessOut.Close()
				if cfg.accessLog, err = obs.NewFormatLogger(accessOut, cfg.LogLevel, format); err != nil {
					return err
				}
			}
			setGCPercent()
			setProcs()
			devWebhookDefaults(&cfg)
			devSyntheticFnrDefault(&cfg, flagGiven(fs, "accept-synthetic-fnr"))
			a, err := newApp(ctx, cfg, log)
			if err != nil {
				return err
			}
			if a.devClient != nil {
				printDevBanner(out, a)
			}
			return a.run(ctx)
		},
	}
}

// Runtime settings of the server, each unless the environment sets its own (GOGC, GOMAXPROCS).
//
// serverGCPercent: the live heap is small (a few MiB), so how often the collector runs follows the
// requests' allocation rate; at the default 100 it took a sixth of the CPU at the token endpoint under
// load. At 400 the heap grows by four times its small live size and the server spends 15-20 % less CPU per
// token and introspection.
//
// procsPerCPU: the server runs twice as many Ps as Go's default (the CPUs it may use). Its goroutines
// block in file syscalls (SQLite's fsync and WAL writes) and share the cores with other processes; with a
// P per core, a goroutine back from a syscall, or queued on a thread the kernel has preempted, waits for a
// P while there is work it could do. On the 2-core machine 4 Ps took REST introspection at 16 connections
// from 15,000/s with a p99 of 6.4 ms to 19,500/s with 3 ms, and tokens at 32 connections from 9,800 to
// 12,500/s (make bench).
const (
	serverGCPercent = 400
	procsPerCPU     = 2
)

// setGCPercent applies serverGCPercent unless GOGC is set.
func setGCPercent() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(serverGCPercent)
	}
}

// setProcs applies procsPerCPU unless GOMAXPROCS is set.
func setProcs() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(procsPerCPU * runtime.GOMAXPROCS(0))
	}
}

// serviceNames are the services --services may name.
var serviceNames = []string{"sts", "registry", "introspection", "pvk", "dispatcher", "gateway"}

// module is one node of the service graph: what it needs started before it, and how it starts.
type module struct {
	deps []string
	init func(a *app, ctx context.Context) error
}

// graph is the service graph, declared once: services and the shared pieces they need. Starting a set of
// services starts their dependencies first, in this order; stopping goes the other way.
var graph = map[string]module{
	"nats":          {init: (*app).initNATS},
	"grpc":          {init: (*app).initGRPC},
	"clientauth":    {deps: []string{"nats", "grpc"}, init: (*app).initClientAuth},
	"registry":      {deps: []string{"nats", "grpc"}, init: (*app).initRegistry},
	"subscribers":   {deps: []string{"nats", "grpc"}, init: (*app).initSubscribers},
	"sts":           {deps: []string{"nats", "grpc", "clientauth", "subscribers"}, init: (*app).initSTS},
	"introspection": {deps: []string{"nats", "grpc", "clientauth"}, init: (*app).initIntrospection},
	"pvk":           {deps: []string{"nats", "grpc", "subscribers"}, init: (*app).initPVK},
	"dispatcher":    {deps: []string{"nats", "grpc", "subscribers"}, init: (*app).initDispatcher},
	"gateway":       {deps: []string{"grpc"}, init: (*app).initGateway},
}

// app is one running hnsec process.
type app struct {
	cfg       serveConfig
	log       *slog.Logger
	metrics   *prometheus.Registry
	bus       *natsbus.Bus
	grpcSrv   *grpc.Server
	health    *health.Server
	grpcLis   net.Listener
	internal  *grpcx.Internal
	register  grpc.ServiceRegistrar
	conn      grpc.ClientConnInterface // services to services: presents the internal credential
	public    grpc.ClientConnInterface // the gateway's: never the internal credential
	clients   *clientauth.Authenticator
	httpSrv   *http.Server
	httpLis   net.Listener
	actors    []actor
	closers   []func() error
	devClient *registry.Credentials

	// subscribers is the subscriber checker the STS, PVK and the dispatcher share.
	subscribers *subscriber.Checker

	// stopBy is when the shutdown began plus --shutdown-timeout (see shutdownDeadline).
	stopOnce sync.Once
	stopBy   time.Time
}

// defaultShutdownTimeout is --shutdown-timeout's default: within Kubernetes' default grace period of 30 s,
// with time left for the services to flush their queues and for NATS and the databases to close.
const defaultShutdownTimeout = 20 * time.Second

// shutdownDeadline is when in-flight REST requests and gRPC calls are cut off: --shutdown-timeout after the
// shutdown began, one deadline for both (they stop one after the other).
func (a *app) shutdownDeadline() time.Time {
	a.stopOnce.Do(func() {
		d := a.cfg.ShutdownTimeout
		if d <= 0 {
			d = defaultShutdownTimeout
		}
		a.stopBy = time.Now().Add(d)
	})
	return a.stopBy
}

// gracefulStop stops srv gracefully (no new calls, in-flight ones finish) but waits at most d; then it
// stops it hard: connections close and the calls still running are cancelled, without waiting for their
// handlers to return. It reports whether every call finished in time.
func gracefulStop(srv *grpc.Server, d time.Duration) bool {
	done := make(chan struct{})
	go func() {
		srv.GracefulStop() // returns once the handlers have, also after Stop
		close(done)
	}()
	t := time.NewTimer(max(d, 0))
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		srv.Stop()
		return false
	}
}

// actor is a long-running part of the process (see oklog/run): execute runs until interrupt is called.
type actor struct {
	execute   func() error
	interrupt func(error)
}

// newApp starts the configured services' dependencies and services, in graph order; run serves them.
func newApp(ctx context.Context, cfg serveConfig, log *slog.Logger) (*app, error) {
	order, err := startOrder(cfg.Services)
	if err != nil {
		return nil, err
	}
	// The data directory holds credentials and the embedded stores; it exists whatever the database.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("--data-dir: %w", err)
	}
	a := &app{cfg: cfg, log: log, metrics: obs.NewRegistry()}
	if err := a.openHTTP(); err != nil {
		a.close()
		return nil, err
	}
	for _, name := range order {
		if err := graph[name].init(a, ctx); err != nil {
			a.close()
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
	}
	if a.httpSrv == nil {
		a.listenHTTP(gateway.Ops(a.public, a.publicMetrics()))
	}
	if err := a.listenOps(); err != nil {
		a.close()
		return nil, err
	}
	return a, nil
}

// wantedServices is --services as a list.
func wantedServices(services string) []string {
	if services == "all" {
		return serviceNames
	}
	return strings.Split(services, ",")
}

// startOrder returns the modules the services need, dependencies first.
func startOrder(services string) ([]string, error) {
	wanted := wantedServices(services)
	var order []string
	var visit func(name string)
	visit = func(name string) {
		if slices.Contains(order, name) {
			return
		}
		for _, d := range graph[name].deps {
			visit(d)
		}
		order = append(order, name)
	}
	for _, s := range wanted {
		if !slices.Contains(serviceNames, s) {
			return nil, fmt.Errorf("--services: unknown service %q (known: all, %s)", s, strings.Join(serviceNames, ", "))
		}
	}
	// Visit in the declared order so the start order does not depend on how --services was written.
	for _, s := range serviceNames {
		if slices.Contains(wanted, s) {
			visit(s)
		}
	}
	return order, nil
}

func (a *app) initNATS(context.Context) error {
	if a.cfg.NATSURL == "" {
		unlock, err := lockDataDir(a.cfg.DataDir)
		if err != nil {
			return err
		}
		a.closers = append(a.closers, unlock)
	}
	token, credsFile, err := a.natsCredential()
	if err != nil {
		return err
	}
	bus, err := natsbus.Open(natsbus.Config{URL: a.cfg.NATSURL, DataDir: a.cfg.DataDir, Name: "hnsec", Listen: a.cfg.NATSListen, Sync: a.cfg.NATSSync,
		Namespace: a.cfg.NATSNamespace, Token: token, CredsFile: credsFile})
	if err != nil {
		return err
	}
	if u := bus.ClientURL(); u != "" {
		a.log.Info("embedded NATS listening", "url", u)
	}
	a.bus = bus
	a.closers = append(a.closers, bus.Close)
	return nil
}

// initGRPC opens the gRPC listener and server, and the connection services use to reach each other:
// an in-process channel to the services here, --peer for each one running elsewhere, --peer-addr for the
// rest.
func (a *app) initGRPC(context.Context) error {
	lis, err := net.Listen("tcp", a.cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("--grpc-addr: %w", err)
	}
	a.grpcLis = lis
	credential, err := a.internalCredential()
	if err != nil {
		return err
	}
	a.internal = grpcx.NewInternal(credential)
	var serverOpts []grpc.ServerOption
	var dialOpts, publicDialOpts []grpc.DialOption
	switch tlsFlags := []string{a.cfg.GRPCTLSCert, a.cfg.GRPCTLSKey, a.cfg.GRPCTLSCA}; {
	case !slices.Contains(tlsFlags, ""):
		t, err := grpcx.LoadTLS(a.cfg.GRPCTLSCert, a.cfg.GRPCTLSKey, a.cfg.GRPCTLSCA)
		if err != nil {
			return err
		}
		serverOpts = append(serverOpts, t.ServerOption())
		dialOpts, publicDialOpts = append(dialOpts, t.DialOption()), append(publicDialOpts, t.PublicDialOption())
	case slices.ContainsFunc(tlsFlags, func(f string) bool { return f != "" }):
		return errors.New("--grpc-tls-cert, --grpc-tls-key and --grpc-tls-ca go together")
	}
	a.grpcSrv, a.health = grpcx.NewServer(a.log, a.internal, serverOpts...)
	if a.cfg.OpsAddr == "" {
		grpcx.Reflection(a.grpcSrv, a.grpcSrv) // else on the ops listener (listenOps)
	}
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	a.actors = append(a.actors, actor{func() error { return a.grpcSrv.Serve(lis) }, func(error) {
		if !gracefulStop(a.grpcSrv, time.Until(a.shutdownDeadline())) {
			a.log.Warn("gRPC calls still running at the shutdown timeout were cut off", "timeout", a.cfg.ShutdownTimeout.String())
		}
	}})
	inproc := grpcx.NewInProcessChannel(a.log, a.internal)
	healthpb.RegisterHealthServer(inproc, a.health)
	a.register = grpcx.Registrars{a.grpcSrv, inproc}
	here := map[string]bool{}
	for _, s := range serviceNames {
		here[s] = slices.Contains(wantedServices(a.cfg.Services), s)
	}
	internal := grpcx.Router{Local: grpcx.InProcessClient(inproc, credential), Here: here, Peers: map[string]grpc.ClientConnInterface{}}
	public := grpcx.Router{Local: grpcx.InProcessClient(inproc, ""), Here: here, Peers: map[string]grpc.ClientConnInterface{}}
	dial := func(addr string) (withCredential, without *grpc.ClientConn, err error) {
		if withCredential, err = grpcx.Dial(addr, credential, dialOpts...); err != nil {
			return nil, nil, err
		}
		if without, err = grpcx.Dial(addr, "", publicDialOpts...); err != nil {
			return nil, nil, errors.Join(err, withCredential.Close())
		}
		a.closers = append(a.closers, withCredential.Close, without.Close)
		return withCredential, without, nil
	}
	for _, p := range a.cfg.Peers {
		svc, addr, ok := strings.Cut(p, "=")
		if !ok || !slices.Contains(serviceNames, svc) || svc == "gateway" || addr == "" {
			return fmt.Errorf("--peer %q: want service=host:port with a service of sts, registry, introspection, pvk, dispatcher", p)
		}
		c, pc, err := dial(addr)
		if err != nil {
			return err
		}
		internal.Peers[svc], public.Peers[svc] = c, pc
	}
	if a.cfg.PeerAddr != "" {
		c, pc, err := dial(a.cfg.PeerAddr)
		if err != nil {
			return err
		}
		internal.Default, public.Default = c, pc
	}
	a.conn, a.public = internal, public
	return nil
}

// internalCredential reads --internal-credential-file, or <data-dir>/internal-credential, creating it
// (mode 0600) when it does not exist yet.
func (a *app) internalCredential() (string, error) {
	path := a.cfg.InternalCredentialFile
	if path == "" {
		if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
			return "", err
		}
		path = filepath.Join(a.cfg.DataDir, "internal-credential")
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && a.cfg.InternalCredentialFile == "" {
		credential := secrets.New()
		return credential, os.WriteFile(path, []byte(credential+"\n"), 0o600)
	}
	if err != nil {
		return "", fmt.Errorf("internal credential: %w", err)
	}
	credential := strings.TrimSpace(string(b))
	if len(credential) < 32 {
		return "", errors.New("internal credential: at least 32 characters are required")
	}
	return credential, nil
}

func (a *app) storeConfig() store.Config { return storeConfigOf(a.cfg) }

// storeConfigOf is where the services' databases are.
func storeConfigOf(c serveConfig) store.Config {
	return store.Config{DataDir: c.DataDir, DatabaseURL: c.DatabaseURL, SchemaPrefix: c.DatabaseSchemaPrefix,
		StatementTimeout: c.DatabaseStatementTimeout, MaxConns: c.DatabaseMaxConns}
}

func (a *app) initRegistry(ctx context.Context) error {
	sealer, err := a.sealer()
	if err != nil {
		return err
	}
	srv, db, err := registry.Open(ctx, a.cfg.Registry, a.storeConfig(), sealer, a.bus, stsv1.NewTokenServiceClient(a.conn), a.log.With("service", "registry"))
	if err != nil {
		return err
	}
	a.closers = append(a.closers, db.Close)
	registryv1.RegisterClientRegistryServiceServer(a.register, srv)
	a.internal.Reserve(registry.InternalMethods...)
	a.devClient, err = srv.Bootstrap(ctx, a.cfg.DataDir, a.cfg.Dev)
	return err
}

// initClientAuth starts the client authenticator the OAuth2 endpoints share.
func (a *app) initClientAuth(ctx context.Context) error {
	if err := a.cfg.ClientAuth.Validate(); err != nil {
		return err
	}
	cfg := a.cfg.ClientAuth
	cfg.Issuer, cfg.PublicURL = a.cfg.STS.Issuer, a.cfg.STS.PublicURL
	cfg.Forwarder, cfg.IsInternal = clientauth.ForwarderToken(a.internal.Credential), a.internal.IsInternal
	a.clients = clientauth.New(cfg, registryv1.NewClientRegistryServiceClient(a.conn))
	a.addLoop(ctx, func(ctx context.Context) error { return a.clients.Run(ctx, a.bus) })
	return nil
}

// sealer returns the key-encryption key's sealer: HNSEC_KEK, else --kek-file, else in dev mode
// <data-dir>/kek (created on the first start).
func (a *app) sealer() (*seal.Sealer, error) {
	file := a.cfg.KEKFile
	if file == "" && a.cfg.Dev {
		if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
			return nil, err
		}
		file = filepath.Join(a.cfg.DataDir, "kek")
	}
	kek, err := seal.LoadKEK(os.Getenv("HNSEC_KEK"), file, a.cfg.Dev)
	if err != nil {
		return nil, err
	}
	return seal.New(kek)
}

// addLoop adds an actor running loop until the process stops.
func (a *app) addLoop(ctx context.Context, loop func(context.Context) error) {
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.actors = append(a.actors, actor{func() error { return loop(runCtx) }, func(error) { cancel() }})
}

func (a *app) initSTS(ctx context.Context) error {
	sealer, err := a.sealer()
	if err != nil {
		return err
	}
	srv, db, err := sts.Open(ctx, a.cfg.STS, a.storeConfig(), sealer, a.bus, a.clients, a.metrics, a.log.With("service", "sts"))
	if err != nil {
		return err
	}
	a.closers = append(a.closers, db.Close)
	srv.CheckSubscribersWith(a.subscribers)
	srv.AuthorizeAdminsWith(registryv1.NewClientRegistryServiceClient(a.conn))
	stsv1.RegisterTokenServiceServer(a.register, srv)
	a.internal.Reserve(sts.InternalMethods...)
	a.addLoop(ctx, srv.Run)
	return nil
}

func (a *app) initIntrospection(ctx context.Context) error {
	srv := introspection.New(a.clients, stsv1.NewTokenServiceClient(a.conn), registryv1.NewClientRegistryServiceClient(a.conn),
		a.bus, a.internal.IsInternal, a.cfg.IntrospectionCacheAge, a.metrics, a.log.With("service", "introspection"))
	introspectionv1.RegisterIntrospectionServiceServer(a.register, srv)
	a.addLoop(ctx, srv.Run)
	return nil
}

func (a *app) initDispatcher(ctx context.Context) error {
	cfg := a.cfg.Dispatcher
	cfg.AllowCIDRs, cfg.AllowHTTPHosts, cfg.Replicas = a.cfg.PVK.WebhookAllowCIDRs, a.cfg.PVK.WebhookAllowHTTPHosts, a.cfg.PVK.StreamReplicas
	srv, db, err := dispatcher.Open(ctx, cfg, a.storeConfig(), a.bus, pvkv1.NewSubscriptionsServiceClient(a.conn),
		stsv1.NewTokenServiceClient(a.conn), a.subscribers, a.metrics, a.log.With("service", "dispatcher"))
	if err != nil {
		return err
	}
	a.closers = append(a.closers, db.Close)
	dispatcherv1.RegisterDeliveriesServiceServer(a.register, srv)
	a.addLoop(ctx, srv.Run)
	return nil
}

func (a *app) initPVK(ctx context.Context) error {
	pvkCfg := a.cfg.PVK
	if a.cfg.NATSSync > 0 {
		pvkCfg.OutboxRetention = 2*time.Duration(a.cfg.NATSSync) + time.Second
	}
	sealer, err := a.sealer()
	if err != nil {
		return err
	}
	srv, db, err := pvk.Open(ctx, pvkCfg, a.storeConfig(), sealer, a.bus, introspectionv1.NewIntrospectionServiceClient(a.conn),
		stsv1.NewTokenServiceClient(a.conn), "urn:hnsec:pvk:"+a.cfg.STS.Issuer, a.metrics, a.log.With("service", "pvk"))
	if err != nil {
		return err
	}
	a.closers = append(a.closers, db.Close)
	srv.AuthorizeAdminsWith(registryv1.NewClientRegistryServiceClient(a.conn))
	pvkv1.RegisterPrivacySettingsServiceServer(a.register, srv)
	subs, err := pvk.NewSubscriptions(srv, a.subscribers)
	if err != nil {
		return err
	}
	pvkv1.RegisterSubscriptionsServiceServer(a.register, subs)
	a.internal.Reserve(pvk.InternalMethods...)
	a.addLoop(ctx, srv.Run)
	a.addLoop(ctx, subs.Run)
	return srv.Bootstrap(ctx, a.cfg.Dev)
}

func (a *app) initGateway(ctx context.Context) error {
	opts := []gateway.Option{gateway.WithForwarder(clientauth.ForwarderToken(a.internal.Credential))}
	if a.cfg.AccessLog {
		access := a.cfg.accessLog
		if access == nil {
			access = a.log
		}
		opts = append(opts, gateway.WithAccessLog(access.With("service", "gateway")))
	}
	h, err := gateway.New(context.WithoutCancel(ctx), a.public, a.publicMetrics(), a.log.With("service", "gateway"), opts...)
	if err != nil {
		return err
	}
	if h, err = a.mountStandin(h); err != nil {
		return err
	}
	a.listenHTTP(h)
	return nil
}

// listenHTTP serves h on --http-addr (opened by openHTTP): the REST gateway, or in a process without it
// the operations endpoints (/healthz, /readyz, and /metrics unless --ops-addr serves them).
func (a *app) listenHTTP(h http.Handler) {
	a.httpSrv = &http.Server{Handler: gateway.Headers(h), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
}

// run serves until ctx ends, then shuts down gracefully: the REST gateway finishes in-flight requests, the
// gRPC server finishes in-flight calls, services flush their queues, and NATS and the databases close.
func (a *app) run(ctx context.Context) error {
	defer a.close()
	var group run.Group
	stopped := make(chan struct{})
	group.Add(func() error {
		select {
		case <-ctx.Done():
			a.log.Info("shutting down", "cause", context.Cause(ctx).Error())
		case <-stopped:
		}
		return nil
	}, func(error) { close(stopped) })
	if a.cfg.DebugAddr != "" {
		debug := &http.Server{Addr: a.cfg.DebugAddr, Handler: http.DefaultServeMux, ReadHeaderTimeout: 10 * time.Second}
		group.Add(func() error {
			if err := debug.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("--debug-addr: %w", err)
			}
			return nil
		}, func(error) { _ = debug.Close() })
	}
	if a.httpSrv != nil {
		group.Add(func() error {
			serve := func() error { return a.httpSrv.Serve(a.httpLis) }
			if a.cfg.HTTPTLSCert != "" || a.cfg.HTTPTLSKey != "" {
				serve = func() error { return a.httpSrv.ServeTLS(a.httpLis, a.cfg.HTTPTLSCert, a.cfg.HTTPTLSKey) }
			}
			if err := serve(); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}, func(error) {
			a.health.Shutdown()
			sctx, cancel := context.WithDeadline(context.Background(), a.shutdownDeadline())
			defer cancel()
			if err := a.httpSrv.Shutdown(sctx); err != nil {
				a.log.Warn("REST requests still running at the shutdown timeout were cut off", "timeout", a.cfg.ShutdownTimeout.String())
				_ = a.httpSrv.Close()
			}
		})
	}
	// Actors stop in the order they were added: the REST gateway first, then the gRPC server, then the
	// services' own loops (in start order, so nothing stops before what feeds it).
	for _, ac := range a.actors {
		group.Add(ac.execute, ac.interrupt)
	}
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range a.grpcSrv.GetServiceInfo() { // each API by its name too, for probes and load balancers
		a.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	a.log.Info("hnsec serving", a.settings()...)
	err := group.Run()
	a.log.Info("hnsec stopped")
	return err
}

// close releases what newApp opened, last opened first.
func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		if err := a.closers[i](); err != nil {
			a.log.Error("close", "err", err)
		}
	}
	a.closers = nil
}

// settings are the process's effective settings as log attributes: what it serves, where its data is,
// and the checks that differ between dev and production. Never a secret, nor a database URL (it may hold
// a password).
func (a *app) settings() []any {
	database, nats := "sqlite in --data-dir", "embedded, in-process only"
	if a.cfg.DatabaseURL != "" {
		database = "postgresql"
	}
	switch {
	case a.cfg.NATSURL != "":
		nats = "external"
	case a.cfg.NATSListen != "":
		nats = "embedded, listening on " + a.cfg.NATSListen + " (token in the credential file)"
	}
	return []any{"http", a.httpAddr(), "grpc", a.grpcLis.Addr().String(), "ops", a.cfg.OpsAddr, "services", a.cfg.Services,
		"dev", a.cfg.Dev, "data_dir", a.cfg.DataDir, "database", database, "nats", nats, "issuer", a.cfg.STS.Issuer,
		"public_url", a.cfg.STS.PublicURL, "trusted_proxies", a.cfg.ClientAuth.TrustedProxies.String(),
		"webhook_allow_cidrs", strings.Join(a.cfg.PVK.WebhookAllowCIDRs, ","),
		"webhook_allow_http_hosts", strings.Join(a.cfg.PVK.WebhookAllowHTTPHosts, ",")}
}

// logFormat is --log-format, or its default: text for a person at a terminal in dev mode, json otherwise.
func (c *serveConfig) logFormat(terminal bool) string {
	switch {
	case c.LogFormat != "":
		return c.LogFormat
	case c.Dev && terminal:
		return "text"
	}
	return "json"
}

// isTerminal reports whether f is a terminal.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// devWebhookDefaults lets dev mode's webhooks call receivers on this machine over plain http, so a demo
// runs without flags, unless --webhook-allow-cidr or --webhook-allow-http-host say otherwise. Production
// (no --dev) keeps the strict rules.
func devWebhookDefaults(c *serveConfig) {
	if !c.Dev || len(c.PVK.WebhookAllowCIDRs) > 0 || len(c.PVK.WebhookAllowHTTPHosts) > 0 {
		return
	}
	c.PVK.WebhookAllowCIDRs = []string{"127.0.0.0/8", "::1/128"}
	c.PVK.WebhookAllowHTTPHosts = []string{"127.0.0.1", "localhost", "::1"}
}

// devSyntheticFnrDefault lets dev mode accept synthetic test persons (H-numbers and Tenor's) in PVK, as
// PVK's test environments do, unless --accept-synthetic-fnr was given (given is whether it was).
func devSyntheticFnrDefault(c *serveConfig, given bool) {
	if c.Dev && !given {
		c.PVK.AcceptSyntheticFnr = true
	}
}

// flagGiven reports whether the flag name was set on the command line or from the environment.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func (a *app) httpAddr() string {
	if a.httpLis == nil {
		return ""
	}
	return a.httpLis.Addr().String()
}

func printDevBanner(out io.Writer, a *app) {
	c := a.devClient
	fmt.Fprintf(out, `
hnsec dev mode: demo client configuration (also in %s; a demo API allowed to introspect is in %s)
  client_id:     %s
  client_secret: %s
  scopes:        %s

  curl -s -X POST http://%s/sts/Token \
    -H 'Content-Type: application/x-www-form-urlencoded' \
    -d 'grant_type=client_credentials&client_id=%s&client_secret=%s'

`, filepath.Join(a.cfg.DataDir, registry.DevClientFile), filepath.Join(a.cfg.DataDir, registry.DevAPIFile), c.ClientID, c.ClientSecret, strings.Join(c.Scopes, " "),
		a.httpAddr(), c.ClientID, c.ClientSecret)
	fmt.Fprintln(out, "settings (hnsec serve --help lists every flag):")
	kv := a.settings()
	for i := 0; i+1 < len(kv); i += 2 {
		if v := fmt.Sprint(kv[i+1]); v != "" {
			fmt.Fprintf(out, "  %-25s %s\n", kv[i].(string)+":", v)
		}
	}
	fmt.Fprintln(out)
}
