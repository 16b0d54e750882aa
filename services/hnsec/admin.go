package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/flagx"
	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/services/registry"
	"github.com/hnsec/hnsec/services/sts"
)

// adminConfig holds the flags every admin command shares.
type adminConfig struct {
	Addr            string
	DataDir         string
	CredentialsFile string
	Output          string
}

func (c *adminConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:9090", "gRPC address of hnsec")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "data directory holding operator.json")
	fs.StringVar(&c.CredentialsFile, "credentials-file", "", "operator credentials file (default: <data-dir>/operator.json)")
	fs.StringVar(&c.Output, "o", "text", "output format: text or json")
}

// adminSession is a connection authorised as the operator.
type adminSession struct {
	conn     *grpc.ClientConn
	ctx      context.Context
	registry registryv1.ClientRegistryServiceClient
	out      io.Writer
	json     bool
}

func adminCommand(out io.Writer) *ffcli.Command {
	var cfg adminConfig
	fs := flag.NewFlagSet("hnsec admin", flag.ContinueOnError)
	cfg.registerFlags(fs)
	// sub builds a subcommand whose flags are its own plus the shared admin flags.
	sub := func(name, usage, help string, flags func(*flag.FlagSet), exec func(*adminSession, []string) error) *ffcli.Command {
		sfs := flag.NewFlagSet("hnsec admin "+name, flag.ContinueOnError)
		cfg.registerFlags(sfs)
		if flags != nil {
			flags(sfs)
		}
		return &ffcli.Command{
			Name: name, ShortUsage: usage, ShortHelp: help, FlagSet: sfs,
			Options: []ff.Option{ff.WithEnvVarPrefix("HNSEC")},
			Exec: func(ctx context.Context, args []string) error {
				s, err := openAdminSession(ctx, cfg, out)
				if err != nil {
					return err
				}
				defer s.conn.Close()
				return describe(exec(s, args))
			},
		}
	}
	// byID builds a client subcommand that takes one CLIENT_ID and prints the client call returns.
	byID := func(name, help string, call func(*adminSession, string) (*registryv1.Client, error)) *ffcli.Command {
		return sub(name, "hnsec admin client "+name+" [flags] CLIENT_ID", help, nil, func(s *adminSession, args []string) error {
			id, err := oneArg(args)
			if err != nil {
				return err
			}
			c, err := call(s, id)
			if err != nil {
				return err
			}
			return s.printProto(c)
		})
	}
	var create struct {
		name, orgnr, system string
		scopes              flagx.StringList
	}
	clientCmds := []*ffcli.Command{
		sub("create", "hnsec admin client create --name N --orgnr 9DIGITS --scope S [--scope S ...] [-o json]",
			"create a client configuration and print its id and secret (shown once)",
			func(fs *flag.FlagSet) {
				fs.StringVar(&create.name, "name", "", "client name (shown as client_name in tokens)")
				fs.StringVar(&create.orgnr, "orgnr", "", "owning organisation's 9-digit number")
				fs.StringVar(&create.system, "client-system", "", "client system id this configuration is an instance of")
				fs.Var(&create.scopes, "scope", "allowed scope (repeatable)")
			},
			func(s *adminSession, _ []string) error {
				resp, err := s.registry.CreateClient(s.ctx, &registryv1.CreateClientRequest{
					Name: create.name, OrganisationNumber: create.orgnr, Scopes: create.scopes, ClientSystemId: create.system,
				})
				if err != nil {
					return err
				}
				return s.print(registry.Credentials{ClientID: resp.GetClient().GetClientId(), ClientSecret: resp.GetClientSecret(),
					Scopes: resp.GetClient().GetScopes()})
			}),
		byID("get", "show a client configuration", func(s *adminSession, id string) (*registryv1.Client, error) {
			resp, err := s.registry.GetClient(s.ctx, &registryv1.GetClientRequest{ClientId: id})
			return resp.GetClient(), err
		}),
		byID("block", "block a client configuration (no new tokens)", func(s *adminSession, id string) (*registryv1.Client, error) {
			resp, err := s.registry.BlockClient(s.ctx, &registryv1.BlockClientRequest{ClientId: id})
			return resp.GetClient(), err
		}),
		byID("unblock", "unblock a client configuration", func(s *adminSession, id string) (*registryv1.Client, error) {
			resp, err := s.registry.UnblockClient(s.ctx, &registryv1.UnblockClientRequest{ClientId: id})
			return resp.GetClient(), err
		}),
	}
	var revokeClient string
	tokenCmds := []*ffcli.Command{
		sub("revoke-all", "hnsec admin token revoke-all --client CLIENT_ID [-o json]",
			"revoke every outstanding access token of a client configuration",
			func(fs *flag.FlagSet) { fs.StringVar(&revokeClient, "client", "", "client_id whose tokens to revoke") },
			func(s *adminSession, _ []string) error {
				resp, err := stsv1.NewTokenServiceClient(s.conn).RevokeAllTokens(s.ctx, &stsv1.RevokeAllTokensRequest{ClientId: revokeClient})
				if err != nil {
					return err
				}
				return s.printProto(resp)
			}),
	}
	group := func(name, help string, cmds []*ffcli.Command) *ffcli.Command {
		names := make([]string, len(cmds))
		for i, c := range cmds {
			names[i] = c.Name
		}
		return &ffcli.Command{
			Name: name, ShortUsage: "hnsec admin " + name + " <" + strings.Join(names, "|") + ">", ShortHelp: help,
			FlagSet: flag.NewFlagSet("hnsec admin "+name, flag.ContinueOnError), Subcommands: cmds,
			Exec: func(context.Context, []string) error { return flag.ErrHelp },
		}
	}
	return &ffcli.Command{
		Name: "admin", ShortUsage: "hnsec admin <client|token> <command> [flags]", ShortHelp: "administer hnsec over gRPC as the operator",
		FlagSet: fs,
		Subcommands: []*ffcli.Command{
			group("client", "client configurations", clientCmds),
			group("token", "access tokens", tokenCmds),
		},
		Exec: func(context.Context, []string) error { return flag.ErrHelp },
	}
}

// openAdminSession reads the operator credential, gets an access token with the admin scope and returns a
// context that presents it.
func openAdminSession(ctx context.Context, cfg adminConfig, out io.Writer) (*adminSession, error) {
	path := cfg.CredentialsFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, registry.OperatorFile)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("operator credentials: %w (start hnsec once, or pass --data-dir or --credentials-file)", err)
	}
	var cred registry.Credentials
	if err := json.Unmarshal(b, &cred); err != nil {
		return nil, fmt.Errorf("operator credentials %s: %w", path, err)
	}
	conn, err := grpcx.Dial(cfg.Addr, "")
	if err != nil {
		return nil, err
	}
	tok, err := stsv1.NewTokenServiceClient(conn).Token(ctx, &stsv1.TokenRequest{
		GrantType: sts.GrantClientCredentials, ClientId: cred.ClientID, ClientSecret: cred.ClientSecret, Scope: registry.AdminScope,
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("operator token: %w", describe(err))
	}
	return &adminSession{
		conn:     conn,
		ctx:      metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.GetAccessToken()),
		registry: registryv1.NewClientRegistryServiceClient(conn),
		out:      out,
		json:     cfg.Output == "json",
	}, nil
}

// print writes v as JSON, or as "key: value" lines in text mode.
func (s *adminSession) print(v registry.Credentials) error {
	if s.json {
		return json.NewEncoder(s.out).Encode(v)
	}
	_, err := fmt.Fprintf(s.out, "client_id:     %s\nclient_secret: %s\nscopes:        %s\n", v.ClientID, v.ClientSecret, strings.Join(v.Scopes, " "))
	return err
}

// printProto writes a message as JSON (indented in text mode).
func (s *adminSession) printProto(m proto.Message) error {
	opts := protojson.MarshalOptions{UseProtoNames: true}
	if !s.json {
		opts.Multiline = true
	}
	b, err := opts.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(s.out, string(b))
	return err
}

func oneArg(args []string) (string, error) {
	if len(args) != 1 {
		return "", errors.New("expected exactly one argument")
	}
	return args[0], nil
}

// describe turns a gRPC error into "kind: description".
func describe(err error) error {
	if err == nil {
		return nil
	}
	e := apierr.FromGRPC(err)
	if e.Kind == apierr.ServerError || e.Kind == apierr.Unavailable {
		return err
	}
	return fmt.Errorf("%s: %s", e.Kind.Name, e.Description)
}
