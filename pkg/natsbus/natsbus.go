// Package natsbus connects a process to NATS: an external server or cluster when a URL is given, or else
// an embedded nats-server with JetStream (file store in the data directory, synced on every write or at an
// interval) reached through an in-process connection, so it opens no port (4222 may be taken by another
// server). When the embedded server does listen for other processes it requires a token of every client,
// the in-process connection included: whoever reaches the port without it can neither read the change
// streams nor publish forged events.
package natsbus

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Config selects the NATS server.
type Config struct {
	// URL of an external server; empty starts the embedded one.
	URL string
	// DataDir holds the embedded server's JetStream store (in DataDir/nats).
	DataDir string
	// Name is the client connection name.
	Name string
	// Listen, when set, makes the embedded server also accept clients on this host:port (port 0: any
	// free port), so other processes can share it; empty means in-process only. It needs Token.
	Listen string
	// Token, with the embedded server, is the token it requires of every client (the in-process
	// connection presents it too); with URL, the token the connection presents unless the URL carries
	// credentials of its own. Empty: none.
	Token string
	// CredsFile is a NATS credentials file (user JWT and NKEY seed) the connection to URL presents.
	CredsFile string
	// Sync is when the embedded server's JetStream writes reach the disk.
	Sync Sync
	// Namespace, when set, prefixes every subject, stream and bucket, so several deployments (or test
	// runs) share one NATS server without seeing each other.
	Namespace string
}

// Sync is when JetStream writes reach the disk: 0 syncs each write before acknowledging it, a positive
// duration syncs every so often in the background. Its flag form is "always" or a duration.
type Sync time.Duration

// String implements flag.Value.
func (s *Sync) String() string {
	if *s == 0 {
		return "always"
	}
	return time.Duration(*s).String()
}

// Set implements flag.Value.
func (s *Sync) Set(v string) error {
	if v == "always" {
		*s = 0
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return fmt.Errorf("want always or a positive duration, got %q", v)
	}
	*s = Sync(d)
	return nil
}

// Bus is a NATS connection, and the embedded server behind it when there is one.
type Bus struct {
	// Conn is the connection every service shares.
	Conn *nats.Conn
	// Namespace prefixes subjects, streams and buckets (see Config).
	Namespace string
	server    *server.Server

	mu sync.Mutex
	// onReconnect are the functions OnReconnect registered, by registration number.
	onReconnect map[int]func()
	registered  int
}

// OnReconnect registers f to run (on the connection's callback goroutine; it must not block) each time
// the connection is back after losing the server: events published meanwhile never reached this
// process, so whoever keeps what events invalidate (caches) drops it. remove unregisters f.
func (b *Bus) OnReconnect(f func()) (remove func()) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.onReconnect == nil {
		b.onReconnect = map[int]func(){}
	}
	b.registered++
	n := b.registered
	b.onReconnect[n] = f
	return func() {
		b.mu.Lock()
		delete(b.onReconnect, n)
		b.mu.Unlock()
	}
}

// reconnected runs the OnReconnect functions.
func (b *Bus) reconnected(*nats.Conn) {
	b.mu.Lock()
	fs := make([]func(), 0, len(b.onReconnect))
	for _, f := range b.onReconnect {
		fs = append(fs, f)
	}
	b.mu.Unlock()
	for _, f := range fs {
		f()
	}
}

// Subject is a subject in the bus's namespace: "<namespace>.<subject>".
func (b *Bus) Subject(subject string) string {
	if b.Namespace == "" {
		return subject
	}
	return b.Namespace + "." + subject
}

// Name is a stream, consumer or bucket name in the bus's namespace: "<namespace>_<name>".
func (b *Bus) Name(name string) string {
	if b.Namespace == "" {
		return name
	}
	return b.Namespace + "_" + name
}

// Open starts or connects to NATS.
func Open(cfg Config) (*Bus, error) {
	if !validNamespace(cfg.Namespace) {
		return nil, fmt.Errorf("nats namespace %q: use letters, digits, - and _", cfg.Namespace)
	}
	b := &Bus{Namespace: cfg.Namespace}
	if cfg.URL != "" {
		opts := []nats.Option{nats.Name(cfg.Name), nats.MaxReconnects(-1), nats.ReconnectHandler(b.reconnected)}
		switch {
		case cfg.CredsFile != "":
			opts = append(opts, nats.UserCredentials(cfg.CredsFile))
		case cfg.Token != "" && !strings.Contains(cfg.URL, "@"):
			opts = append(opts, nats.Token(cfg.Token))
		}
		nc, err := nats.Connect(cfg.URL, opts...)
		if err != nil {
			return nil, fmt.Errorf("nats %s: %w", redact(cfg.URL), err)
		}
		b.Conn = nc
		return b, nil
	}
	if cfg.Listen != "" && cfg.Token == "" {
		return nil, errors.New("embedded nats: a listener needs a token (no client may connect without one)")
	}
	opts := &server.Options{
		ServerName: "hnsec-embedded",
		DontListen: cfg.Listen == "",
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		SyncAlways: cfg.Sync == 0,
		NoSigs:     true,
		NoLog:      true,
		// The token every client presents; nats-server compares it in constant time.
		Authorization: cfg.Token,
	}
	if cfg.Sync > 0 {
		opts.SyncInterval = time.Duration(cfg.Sync)
	}
	if cfg.Listen != "" {
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("nats listen address: %w", err)
		}
		opts.Host = host
		if opts.Port, err = strconv.Atoi(port); err != nil {
			return nil, fmt.Errorf("nats listen port: %w", err)
		}
		if opts.Port == 0 {
			opts.Port = server.RANDOM_PORT
		}
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats: not ready after 30s")
	}
	connOpts := []nats.Option{nats.Name(cfg.Name), nats.InProcessServer(ns), nats.ReconnectHandler(b.reconnected)}
	if cfg.Token != "" {
		connOpts = append(connOpts, nats.Token(cfg.Token))
	}
	nc, err := nats.Connect("", connOpts...)
	if err != nil {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats connect: %w", err)
	}
	b.Conn, b.server = nc, ns
	return b, nil
}

// ClientURL is the embedded server's client URL when it listens, else "". It holds no credentials.
func (b *Bus) ClientURL() string {
	if b.server == nil || b.server.Addr() == nil {
		return ""
	}
	return b.server.ClientURL()
}

// Close drains the connection and stops the embedded server, waiting until its store is closed.
func (b *Bus) Close() error {
	err := b.Conn.Drain()
	for !b.Conn.IsClosed() {
		time.Sleep(5 * time.Millisecond)
	}
	if b.server != nil {
		b.server.Shutdown()
		b.server.WaitForShutdown()
	}
	return err
}

// redact removes the user information (a token, a user and password) from each of a list of NATS URLs.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if at := strings.LastIndexByte(p, '@'); at >= 0 {
			scheme := ""
			if j := strings.Index(p, "://"); j >= 0 && j < at {
				scheme = p[:j+3]
			}
			parts[i] = scheme + "REDACTED@" + p[at+1:]
		}
	}
	return strings.Join(parts, ",")
}

// validNamespace admits names usable both in subjects and in stream and bucket names.
func validNamespace(ns string) bool {
	for _, c := range ns {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return len(ns) <= 32
}
