package localcluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// StartTimeout bounds how long one process may take to start.
const StartTimeout = 60 * time.Second

// Options describe a local cluster.
type Options struct {
	// Run runs hnsec.
	Run Runner
	// Dir holds every process's data directory, the shared key-encryption key, internal credential and
	// NATS token (nats-credential, which every NATS client presents), and with Logs each process's log as
	// logs/NAME.log. A cluster started again on the same Dir keeps its
	// data (NATS stores, keys, credentials).
	Dir string
	// DatabaseURL and SchemaPrefix name the PostgreSQL every service stores in.
	DatabaseURL, SchemaPrefix string
	// Replicas of the STS, introspection, the dispatcher and the gateway (default 2).
	Replicas int
	// HTTPAddr is the first gateway's REST address (default: a free port); the others get free ports.
	HTTPAddr string
	// Flags go to every `hnsec serve`.
	Flags []string
	// Logs writes each process's log to Dir/logs/NAME.log.
	Logs bool
}

// Cluster is a running local cluster.
type Cluster struct {
	opts Options
	// NATS are the three NATS nodes, Services the hnsec processes, in start order.
	NATS, Services []*Process
}

// serviceNames are the services with a gRPC API, the ones a process names with --peer.
var serviceNames = []string{"sts", "registry", "introspection", "pvk", "dispatcher"}

// replicated are the services that run Replicas times; the registry and PVK run once.
var replicated = []string{"sts", "introspection", "dispatcher", "gateway"}

// Start starts the NATS cluster and then the services, dependencies first, and returns once every
// process serves. On an error what started is stopped.
func Start(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Replicas == 0 {
		opts.Replicas = 2
	}
	if opts.DatabaseURL == "" {
		return nil, errors.New("a local cluster needs PostgreSQL (--database-url)")
	}
	opts.Run = defaultProcs(opts.Run)
	c := &Cluster{opts: opts}
	if err := c.start(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// defaultProcs runs each process with a P per CPU unless the environment sets GOMAXPROCS: hnsec serve
// doubles Go's default for a process that has the cores to itself or shares them with a few others, but a
// dozen processes on one machine are better off without (the cluster benchmark drained its webhook backlog
// 20-30 % slower on two cores). The count is the machine's, not the caller's GOMAXPROCS, which the test
// binary has doubled itself.
func defaultProcs(run Runner) Runner {
	if os.Getenv("GOMAXPROCS") != "" {
		return run
	}
	return func(args []string) *exec.Cmd {
		cmd := run(args)
		if cmd.Env == nil {
			cmd.Env = os.Environ()
		}
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(runtime.NumCPU()))
		return cmd
	}
}

func (c *Cluster) start(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Join(c.opts.Dir, "logs"), 0o700); err != nil {
		return err
	}
	kek, cred, natsCred, err := c.sharedFiles()
	if err != nil {
		return err
	}
	if err := c.startNATS(ctx, natsCred); err != nil {
		return err
	}

	grpcAddr := map[string][]string{} // per service, each replica's gRPC address
	for _, s := range serviceNames {
		for range c.count(s) {
			a, err := FreeAddr()
			if err != nil {
				return err
			}
			grpcAddr[s] = append(grpcAddr[s], a)
		}
	}
	common := slices.Concat([]string{"--dev", "--nats-url", c.NATSURL(), "--nats-credential-file", natsCred, "--pvk-stream-replicas", "3",
		"--database-url", c.opts.DatabaseURL, "--database-schema-prefix", c.opts.SchemaPrefix, "--database-max-conns", "4",
		"--kek-file", kek, "--internal-credential-file", cred}, c.opts.Flags)
	process := func(service string, i int) *Process {
		name := fmt.Sprintf("%s-%d", service, i+1)
		if c.count(service) == 1 {
			name = service
		}
		dir := filepath.Join(c.opts.Dir, name)
		http, grpc := "127.0.0.1:0", "127.0.0.1:0"
		if service == "gateway" && i == 0 && c.opts.HTTPAddr != "" {
			http = c.opts.HTTPAddr
		}
		if addrs := grpcAddr[service]; addrs != nil {
			grpc = addrs[i]
		}
		args := []string{"serve", "--services", service, "--data-dir", dir, "--http-addr", http, "--grpc-addr", grpc}
		for _, peer := range serviceNames {
			if peer != service {
				addrs := grpcAddr[peer]
				args = append(args, "--peer", peer+"="+addrs[i%len(addrs)])
			}
		}
		var log string
		if c.opts.Logs {
			log = filepath.Join(c.opts.Dir, "logs", name+".log")
		}
		return NewProcess(name, c.opts.Run, slices.Concat(args, common), dir, log)
	}
	// The registry first (it seeds the demo data the others read), then what the gateways call.
	for _, group := range [][]string{{"registry"}, {"pvk", "sts"}, {"introspection", "dispatcher", "gateway"}} {
		var ps []*Process
		for _, s := range group {
			for i := range c.count(s) {
				ps = append(ps, process(s, i))
			}
		}
		c.Services = append(c.Services, ps...)
		if err := startAll(ctx, ps); err != nil {
			return err
		}
	}
	return nil
}

// count is how many processes run service.
func (c *Cluster) count(service string) int {
	if slices.Contains(replicated, service) {
		return c.opts.Replicas
	}
	return 1
}

// sharedFiles writes (on the first start) the key-encryption key, internal credential and NATS token every
// process shares.
func (c *Cluster) sharedFiles() (kek, cred, natsCred string, err error) {
	kek, cred, natsCred = filepath.Join(c.opts.Dir, "kek"), filepath.Join(c.opts.Dir, "internal-credential"), filepath.Join(c.opts.Dir, NATSCredentialFile)
	for _, f := range []string{kek, cred, natsCred} {
		if _, err := os.Stat(f); err == nil {
			continue
		}
		b := make([]byte, 32)
		_, _ = rand.Read(b)
		if err := os.WriteFile(f, []byte(base64.StdEncoding.EncodeToString(b)), 0o600); err != nil {
			return "", "", "", err
		}
	}
	return kek, cred, natsCred, nil
}

// NATSCredentialFile is the file in Dir holding the token every client of the cluster's NATS presents.
const NATSCredentialFile = "nats-credential"

// NATSToken is the token every client of the cluster's NATS presents.
func (c *Cluster) NATSToken() (string, error) {
	b, err := os.ReadFile(filepath.Join(c.opts.Dir, NATSCredentialFile))
	return strings.TrimSpace(string(b)), err
}

// startNATS starts three NATS nodes routed to each other, each requiring the token in tokenFile of clients
// and routes, and waits until JetStream has a leader.
func (c *Cluster) startNATS(ctx context.Context, tokenFile string) error {
	var clients, routes []string
	for range 3 {
		ca, err := FreeAddr()
		if err != nil {
			return err
		}
		ra, err := FreeAddr()
		if err != nil {
			return err
		}
		clients, routes = append(clients, ca), append(routes, ra)
	}
	for i := range 3 {
		name := fmt.Sprintf("nats-%d", i+1)
		dir := filepath.Join(c.opts.Dir, name)
		var log string
		if c.opts.Logs {
			log = filepath.Join(c.opts.Dir, "logs", name+".log")
		}
		args := []string{"dev", "nats-node", "--name", name, "--listen", clients[i], "--cluster-listen", routes[i],
			"--routes", strings.Join(routes, ","), "--store-dir", dir, "--token-file", tokenFile}
		c.NATS = append(c.NATS, NewProcess(name, c.opts.Run, args, dir, log))
	}
	if err := startAll(ctx, c.NATS); err != nil {
		return err
	}
	token, err := c.NATSToken()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(c.NATSURL(), nats.Token(token))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	deadline := time.Now().Add(StartTimeout)
	for {
		_, err := js.AccountInfo(ctx)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the NATS cluster has no JetStream leader: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startAll starts processes side by side.
func startAll(ctx context.Context, ps []*Process) error {
	errs := make([]error, len(ps))
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { errs[i] = p.Start(StartTimeout) })
	}
	wg.Wait()
	return errors.Join(append(errs, ctx.Err())...)
}

// Options are the options the cluster runs with.
func (c *Cluster) Options() Options { return c.opts }

// NATSURL lists every NATS node (clients present NATSToken).
func (c *Cluster) NATSURL() string {
	urls := make([]string, len(c.NATS))
	for i, n := range c.NATS {
		urls[i] = "nats://" + n.NATS
	}
	return strings.Join(urls, ",")
}

// Process returns the process with the name, or nil.
func (c *Cluster) Process(name string) *Process {
	for _, p := range slices.Concat(c.NATS, c.Services) {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// Gateways are the gateway processes.
func (c *Cluster) Gateways() []*Process {
	var gws []*Process
	for _, p := range c.Services {
		if strings.HasPrefix(p.Name, "gateway") {
			gws = append(gws, p)
		}
	}
	return gws
}

// Stop stops the services and then the NATS nodes.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, p := range c.Services {
		wg.Go(p.Stop)
	}
	wg.Wait()
	for _, p := range c.NATS {
		wg.Go(p.Stop)
	}
	wg.Wait()
}
