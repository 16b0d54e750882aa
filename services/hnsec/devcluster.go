package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/peterbourgon/ff/v3/ffcli"

	"github.com/hnsec/hnsec/services/hnsec/localcluster"
	"github.com/hnsec/hnsec/services/registry"
)

// devClusterCommand runs the scale-out deployment on loopback (deploy/local).
func devClusterCommand(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("hnsec dev cluster", flag.ContinueOnError)
	opts := localcluster.Options{Logs: true}
	fs.StringVar(&opts.Dir, "data-dir", "./data/cluster", "directory of every process's data and logs (logs/NAME.log)")
	fs.StringVar(&opts.DatabaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/test", "PostgreSQL every service stores in")
	fs.StringVar(&opts.SchemaPrefix, "database-schema-prefix", "hnsec_local_", "prefix of each service's PostgreSQL schema")
	fs.IntVar(&opts.Replicas, "replicas", 2, "replicas of the STS, introspection, the dispatcher and the gateway")
	fs.StringVar(&opts.HTTPAddr, "http-addr", "127.0.0.1:8080", "REST address of the first gateway")
	return &ffcli.Command{
		Name: "cluster", ShortUsage: "hnsec dev cluster [flags] [-- serve flags for every service]", FlagSet: fs,
		ShortHelp: "run a 3-node NATS cluster and replicas of every service on loopback and PostgreSQL, each a process, until interrupted",
		Exec: func(ctx context.Context, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return err
			}
			opts.Flags = args
			opts.Run = func(args []string) *exec.Cmd { return exec.Command(self, args...) }
			c, err := localcluster.Start(ctx, opts)
			if err != nil {
				return err
			}
			defer c.Stop()
			if err := printCluster(out, c, opts.Dir); err != nil {
				return err
			}
			<-ctx.Done()
			fmt.Fprintln(out, "stopping")
			return nil
		},
	}
}

// printCluster lists the cluster's processes and the demo client's credentials.
func printCluster(out io.Writer, c *localcluster.Cluster, dir string) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tPID\tREST\tGRPC/NATS")
	for _, p := range append(c.NATS, c.Services...) {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.Name, p.Pid(), p.HTTP, p.GRPC+p.NATS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(out, "NATS: %s (token in %s)\nlogs: %s\ndemo client: %s\nstop with Ctrl-C\n", c.NATSURL(),
		filepath.Join(dir, localcluster.NATSCredentialFile), filepath.Join(dir, "logs"),
		filepath.Join(c.Process("registry").DataDir, registry.DevClientFile))
	return err
}

// devNATSNodeCommand runs one node of a NATS cluster with JetStream: the local cluster runs three.
func devNATSNodeCommand() *ffcli.Command {
	fs := flag.NewFlagSet("hnsec dev nats-node", flag.ContinueOnError)
	name := fs.String("name", "", "server name")
	listen := fs.String("listen", "127.0.0.1:4250", "client address")
	clusterListen := fs.String("cluster-listen", "127.0.0.1:6250", "route address")
	routes := fs.String("routes", "", "comma-separated route addresses of every node")
	storeDir := fs.String("store-dir", "", "JetStream store directory")
	tokenFile := fs.String("token-file", "", "file holding the token every client and route must present (required)")
	return &ffcli.Command{
		Name: "nats-node", ShortUsage: "hnsec dev nats-node --name N --listen A --cluster-listen A --routes A,A,A --store-dir D --token-file F", FlagSet: fs,
		ShortHelp: "run one node of a NATS cluster with JetStream (the local cluster starts three)",
		Exec: func(ctx context.Context, _ []string) error {
			if *name == "" || *storeDir == "" || *tokenFile == "" {
				return errors.New("--name, --store-dir and --token-file are required")
			}
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return fmt.Errorf("--token-file: %w", err)
			}
			token := strings.TrimSpace(string(b))
			if len(token) < 32 {
				return errors.New("--token-file: a token of at least 32 characters is required")
			}
			host, port, err := hostPort(*listen)
			if err != nil {
				return fmt.Errorf("--listen: %w", err)
			}
			chost, cport, err := hostPort(*clusterListen)
			if err != nil {
				return fmt.Errorf("--cluster-listen: %w", err)
			}
			var rs []*url.URL
			for _, r := range strings.Split(*routes, ",") {
				rs = append(rs, &url.URL{Scheme: "nats", User: url.UserPassword("route", token), Host: r})
			}
			// Clients present the token; routes, the same as a password (nothing unauthenticated joins the cluster).
			ns, err := server.NewServer(&server.Options{ServerName: *name, Host: host, Port: port, JetStream: true, StoreDir: *storeDir,
				NoSigs: true, Authorization: token, Routes: rs,
				Cluster: server.ClusterOpts{Name: "hnsec-local", Host: chost, Port: cport, Username: "route", Password: token}})
			if err != nil {
				return err
			}
			log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
			ns.SetLoggerV2(natsLogger{log}, false, false, false)
			ns.Start()
			defer func() {
				ns.Shutdown()
				ns.WaitForShutdown()
			}()
			if !ns.ReadyForConnections(localcluster.StartTimeout) {
				return errors.New("the NATS node did not start")
			}
			log.Info(localcluster.ServingMsg, "nats", *listen)
			<-ctx.Done()
			return nil
		},
	}
}

// hostPort splits host:port.
func hostPort(addr string) (string, int, error) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	port, err := strconv.Atoi(addr[i+1:])
	return addr[:i], port, err
}

// natsLogger writes the NATS server's notices and errors to slog.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.log.Info(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
