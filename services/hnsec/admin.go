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
	"slices"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3"
	"github.com/peterbourgon/ff/v3/ffcli"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/flagx"
	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/services/registry"
	"github.com/hnsec/hnsec/services/sts"
)

// adminConfig holds the flags every admin command shares.
type adminConfig struct {
	Addr            string
	DataDir         string
	CredentialsFile string
	Output          string
	TLSCA           string
	// as is whom the command acts as: the operator (or another admin credential) by default.
	as adminActor
}

// adminActor is whom an admin command acts as: the scope of its access token and the credential file in
// the data directory it uses unless --credentials-file names another.
type adminActor struct {
	scope, file string
}

var (
	asAdmin      = adminActor{scope: registry.AdminScope, file: registry.OperatorFile}
	asSubscriber = adminActor{scope: scope.PVKReplication, file: registry.DevClientFile}
)

func (c *adminConfig) registerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:9090", "gRPC address of hnsec")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "data directory holding operator.json")
	fs.StringVar(&c.CredentialsFile, "credentials-file", "", "credentials file (default: <data-dir>/operator.json; for pvk subscription commands the subscriber's, default <data-dir>/dev-client.json)")
	fs.StringVar(&c.Output, "o", "text", "output format: text or json")
	fs.StringVar(&c.TLSCA, "tls-ca", "", "CA (PEM) to verify hnsec's gRPC TLS certificate with (default: plaintext)")
}

// adminSession is a connection authorised as the command's actor.
type adminSession struct {
	conn     *grpc.ClientConn
	ctx      context.Context
	registry registryv1.ClientRegistryServiceClient
	out      io.Writer
	json     bool
}

func adminCommand(out io.Writer) *ffcli.Command {
	cfg := adminConfig{as: asAdmin}
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
				args, err := interleaved(sfs, args)
				if err != nil {
					return err
				}
				s, err := openAdminSession(ctx, cfg, out)
				if err != nil {
					return err
				}
				defer s.conn.Close()
				return describe(exec(s, args))
			},
		}
	}
	// call builds a subcommand that makes one RPC and prints its answer.
	call := func(name, usage, help string, flags func(*flag.FlagSet), rpc func(*adminSession, []string) (proto.Message, error)) *ffcli.Command {
		return sub(name, usage, help, flags, func(s *adminSession, args []string) error {
			m, err := rpc(s, args)
			if err != nil {
				return err
			}
			return s.printProto(m)
		})
	}
	// withID builds a subcommand that takes one id argument.
	withID := func(name, usage, help string, flags func(*flag.FlagSet), rpc func(*adminSession, string) (proto.Message, error)) *ffcli.Command {
		return call(name, usage, help, flags, func(s *adminSession, args []string) (proto.Message, error) {
			id, err := oneArg(args)
			if err != nil {
				return nil, err
			}
			return rpc(s, id)
		})
	}
	// byID builds a subcommand that takes one id argument and no flags of its own.
	byID := func(group, name, help string, rpc func(*adminSession, string) (proto.Message, error)) *ffcli.Command {
		return withID(name, "hnsec admin "+group+" "+name+" [flags] ID", help, nil, rpc)
	}
	var pageSize int
	var pageToken string
	paging := func(fs *flag.FlagSet) {
		fs.IntVar(&pageSize, "page-size", 0, "items per page (default 50, at most 100)")
		fs.StringVar(&pageToken, "page-token", "", "next_page_token of the previous page")
	}
	var create struct {
		name, orgnr, system string
		scopes              flagx.StringList
	}
	var clientList struct{ orgnr, rename string }
	var oidcSet oidcSetFlags
	clientCmds := []*ffcli.Command{
		call("list", "hnsec admin client list [--orgnr 9DIGITS] [--page-size N] [--page-token T]", "list client configurations",
			func(fs *flag.FlagSet) {
				fs.StringVar(&clientList.orgnr, "orgnr", "", "only this organisation's")
				paging(fs)
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.ListClients(s.ctx, &registryv1.ListClientsRequest{OrganisationNumber: clientList.orgnr,
					PageSize: int32(pageSize), PageToken: pageToken})
			}),
		call("update", "hnsec admin client update --name N CLIENT_ID", "rename a client configuration",
			func(fs *flag.FlagSet) { fs.StringVar(&clientList.rename, "name", "", "new name") },
			func(s *adminSession, args []string) (proto.Message, error) {
				id, err := oneArg(args)
				if err != nil {
					return nil, err
				}
				return s.registry.UpdateClient(s.ctx, &registryv1.UpdateClientRequest{
					Client: &registryv1.Client{ClientId: id, Name: clientList.rename}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"name"}}})
			}),
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
		sub("oidc-set", "hnsec admin client oidc-set --client ID [--client-type confidential|public] [--redirect-uri URI ...] [flags]",
			"set a client configuration's OpenID Connect settings (citizen login): only the flags given change",
			func(fs *flag.FlagSet) { oidcSet.fs = fs; oidcSet.register(fs) },
			func(s *adminSession, _ []string) error {
				req, err := oidcSet.request()
				if err != nil {
					return err
				}
				resp, err := s.registry.UpdateClientOidcSettings(s.ctx, req)
				if err != nil {
					return err
				}
				return s.printProto(resp.GetClient())
			}),
		byID("client", "get", "show a client configuration", func(s *adminSession, id string) (proto.Message, error) {
			resp, err := s.registry.GetClient(s.ctx, &registryv1.GetClientRequest{ClientId: id})
			return resp.GetClient(), err
		}),
		byID("client", "delete", "delete a client configuration (its tokens become inactive)", func(s *adminSession, id string) (proto.Message, error) {
			return s.registry.DeleteClient(s.ctx, &registryv1.DeleteClientRequest{ClientId: id})
		}),
		byID("client", "block", "block a client configuration (no new tokens)", func(s *adminSession, id string) (proto.Message, error) {
			resp, err := s.registry.BlockClient(s.ctx, &registryv1.BlockClientRequest{ClientId: id})
			return resp.GetClient(), err
		}),
		byID("client", "unblock", "unblock a client configuration", func(s *adminSession, id string) (proto.Message, error) {
			resp, err := s.registry.UnblockClient(s.ctx, &registryv1.UnblockClientRequest{ClientId: id})
			return resp.GetClient(), err
		}),
	}
	var vendor struct{ name, orgnr string }
	vendorCmds := []*ffcli.Command{
		call("create", "hnsec admin vendor create --name N --orgnr 9DIGITS", "register a vendor; prints its first admin credential (shown once)",
			func(fs *flag.FlagSet) {
				fs.StringVar(&vendor.name, "name", "", "vendor name")
				fs.StringVar(&vendor.orgnr, "orgnr", "", "the vendor's organisation number")
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.CreateVendor(s.ctx, &registryv1.CreateVendorRequest{Name: vendor.name, OrganisationNumber: vendor.orgnr})
			}),
		byID("vendor", "get", "show a vendor", func(s *adminSession, id string) (proto.Message, error) {
			return s.registry.GetVendor(s.ctx, &registryv1.GetVendorRequest{VendorId: id})
		}),
		call("list", "hnsec admin vendor list [--page-size N] [--page-token T]", "list vendors", paging,
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.ListVendors(s.ctx, &registryv1.ListVendorsRequest{PageSize: int32(pageSize), PageToken: pageToken})
			}),
	}
	var system struct{ vendor, name, description, reason string }
	systemCmds := []*ffcli.Command{
		call("create", "hnsec admin system create --vendor ID --name N [--description D]", "register a client system (draft)",
			func(fs *flag.FlagSet) {
				fs.StringVar(&system.vendor, "vendor", "", "owning vendor id")
				fs.StringVar(&system.name, "name", "", "system name")
				fs.StringVar(&system.description, "description", "", "what the system is")
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.CreateClientSystem(s.ctx, &registryv1.CreateClientSystemRequest{VendorId: system.vendor, Name: system.name,
					Description: system.description})
			}),
		byID("system", "get", "show a client system", func(s *adminSession, id string) (proto.Message, error) {
			return s.registry.GetClientSystem(s.ctx, &registryv1.GetClientSystemRequest{ClientSystemId: id})
		}),
		call("list", "hnsec admin system list [--vendor ID] [--page-size N] [--page-token T]", "list client systems",
			func(fs *flag.FlagSet) {
				fs.StringVar(&system.vendor, "vendor", "", "only this vendor's systems")
				paging(fs)
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.ListClientSystems(s.ctx, &registryv1.ListClientSystemsRequest{VendorId: system.vendor,
					PageSize: int32(pageSize), PageToken: pageToken})
			}),
		call("update", "hnsec admin system update [--name N] [--description D] ID", "change a client system's name or description",
			func(fs *flag.FlagSet) {
				fs.StringVar(&system.name, "name", "", "new name")
				fs.StringVar(&system.description, "description", "", "new description")
			},
			func(s *adminSession, args []string) (proto.Message, error) {
				id, err := oneArg(args)
				if err != nil {
					return nil, err
				}
				mask := &fieldmaskpb.FieldMask{}
				if system.name != "" {
					mask.Paths = append(mask.Paths, "name")
				}
				if system.description != "" {
					mask.Paths = append(mask.Paths, "description")
				}
				return s.registry.UpdateClientSystem(s.ctx, &registryv1.UpdateClientSystemRequest{UpdateMask: mask,
					ClientSystem: &registryv1.ClientSystem{ClientSystemId: id, Name: system.name, Description: system.description}})
			}),
		byID("system", "submit", "submit a client system for approval", func(s *adminSession, id string) (proto.Message, error) {
			return s.registry.SubmitClientSystem(s.ctx, &registryv1.SubmitClientSystemRequest{ClientSystemId: id})
		}),
		byID("system", "approve", "approve a client system (operators)", func(s *adminSession, id string) (proto.Message, error) {
			return s.registry.ApproveClientSystem(s.ctx, &registryv1.ApproveClientSystemRequest{ClientSystemId: id})
		}),
		call("reject", "hnsec admin system reject [--reason R] ID", "reject a client system (operators)",
			func(fs *flag.FlagSet) { fs.StringVar(&system.reason, "reason", "", "why, for the vendor") },
			func(s *adminSession, args []string) (proto.Message, error) {
				id, err := oneArg(args)
				if err != nil {
					return nil, err
				}
				return s.registry.RejectClientSystem(s.ctx, &registryv1.RejectClientSystemRequest{ClientSystemId: id, Reason: system.reason})
			}),
	}
	var org struct{ orgnr, name, parent string }
	orgCmds := []*ffcli.Command{
		call("create", "hnsec admin org create --orgnr 9DIGITS --name N [--parent 9DIGITS]",
			"register an organisation; prints its first admin credential (shown once)",
			func(fs *flag.FlagSet) {
				fs.StringVar(&org.orgnr, "orgnr", "", "organisation number")
				fs.StringVar(&org.name, "name", "", "organisation name")
				fs.StringVar(&org.parent, "parent", "", "parent organisation number")
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.CreateOrganisation(s.ctx, &registryv1.CreateOrganisationRequest{OrganisationNumber: org.orgnr, Name: org.name,
					ParentOrganisationNumber: org.parent})
			}),
		byID("org", "get", "show an organisation", func(s *adminSession, nr string) (proto.Message, error) {
			return s.registry.GetOrganisation(s.ctx, &registryv1.GetOrganisationRequest{OrganisationNumber: nr})
		}),
		call("list", "hnsec admin org list [--page-size N] [--page-token T]", "list organisations", paging,
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.ListOrganisations(s.ctx, &registryv1.ListOrganisationsRequest{PageSize: int32(pageSize), PageToken: pageToken})
			}),
	}
	var api struct {
		audience, name, orgnr, id string
		scopes                    flagx.StringList
	}
	apiCmds := []*ffcli.Command{
		call("create", "hnsec admin api create --audience A --name N --orgnr 9DIGITS --scope S [--scope S ...]",
			"register an API; prints its owner's first admin credential (shown once)",
			func(fs *flag.FlagSet) {
				fs.StringVar(&api.audience, "audience", "", "the API's audience, e.g. nhn:helsenorge.eksternapi")
				fs.StringVar(&api.name, "name", "", "API name")
				fs.StringVar(&api.orgnr, "orgnr", "", "the owner's organisation number")
				fs.Var(&api.scopes, "scope", "scope of the API (repeatable)")
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.CreateApiResource(s.ctx, &registryv1.CreateApiResourceRequest{Audience: api.audience, Name: api.name,
					OrganisationNumber: api.orgnr, Scopes: api.scopes})
			}),
		call("list", "hnsec admin api list [--page-size N] [--page-token T]", "list APIs", paging,
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.ListApiResources(s.ctx, &registryv1.ListApiResourcesRequest{PageSize: int32(pageSize), PageToken: pageToken})
			}),
		call("scope-add", "hnsec admin api scope-add --api ID SCOPE", "add a scope to an API",
			func(fs *flag.FlagSet) { fs.StringVar(&api.id, "api", "", "API id") },
			func(s *adminSession, args []string) (proto.Message, error) {
				sc, err := oneArg(args)
				if err != nil {
					return nil, err
				}
				return s.registry.AddApiScope(s.ctx, &registryv1.AddApiScopeRequest{ApiId: api.id, Scope: sc})
			}),
	}
	var grant struct{ client, scope, api string }
	grantFlags := func(fs *flag.FlagSet) {
		fs.StringVar(&grant.client, "client", "", "client_id of the client configuration")
		fs.StringVar(&grant.scope, "scope", "", "the scope")
	}
	decide := func(name, help string, rpc func(*adminSession) (proto.Message, error)) *ffcli.Command {
		return call(name, "hnsec admin grant "+name+" --client ID --scope S", help, grantFlags,
			func(s *adminSession, _ []string) (proto.Message, error) { return rpc(s) })
	}
	grantCmds := []*ffcli.Command{
		decide("request", "ask for a scope for a client configuration", func(s *adminSession) (proto.Message, error) {
			return s.registry.RequestGrant(s.ctx, &registryv1.RequestGrantRequest{ClientId: grant.client, Scope: grant.scope})
		}),
		decide("approve", "approve a grant (the API's owner)", func(s *adminSession) (proto.Message, error) {
			return s.registry.ApproveGrant(s.ctx, &registryv1.ApproveGrantRequest{ClientId: grant.client, Scope: grant.scope})
		}),
		decide("reject", "reject a grant (the API's owner)", func(s *adminSession) (proto.Message, error) {
			return s.registry.RejectGrant(s.ctx, &registryv1.RejectGrantRequest{ClientId: grant.client, Scope: grant.scope})
		}),
		decide("revoke", "revoke an approved grant (the API's owner)", func(s *adminSession) (proto.Message, error) {
			return s.registry.RevokeGrant(s.ctx, &registryv1.RevokeGrantRequest{ClientId: grant.client, Scope: grant.scope})
		}),
		call("list", "hnsec admin grant list (--client ID | --api ID)", "list a client's grants, or an API's",
			func(fs *flag.FlagSet) {
				fs.StringVar(&grant.client, "client", "", "client_id")
				fs.StringVar(&grant.api, "api", "", "API id")
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.ListGrants(s.ctx, &registryv1.ListGrantsRequest{ClientId: grant.client, ApiId: grant.api})
			}),
	}
	var secret struct {
		client          string
		expireIn, grace time.Duration
	}
	secretCmds := []*ffcli.Command{
		call("add", "hnsec admin secret add --client ID [--expire-in DURATION]", "add a client secret (shown once); the old ones keep working",
			func(fs *flag.FlagSet) {
				fs.StringVar(&secret.client, "client", "", "client_id")
				fs.DurationVar(&secret.expireIn, "expire-in", 0, "the new secret stops working after this long (default: never)")
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				req := &registryv1.AddClientSecretRequest{ClientId: secret.client}
				if secret.expireIn > 0 {
					req.ExpireTime = timestamppb.New(time.Now().Add(secret.expireIn))
				}
				return s.registry.AddClientSecret(s.ctx, req)
			}),
		call("list", "hnsec admin secret list --client ID", "list a client's secrets (metadata only)",
			func(fs *flag.FlagSet) { fs.StringVar(&secret.client, "client", "", "client_id") },
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.ListClientSecrets(s.ctx, &registryv1.ListClientSecretsRequest{ClientId: secret.client})
			}),
		call("revoke", "hnsec admin secret revoke --client ID [--grace DURATION] SECRET_ID", "make a secret stop working (after a grace period)",
			func(fs *flag.FlagSet) {
				fs.StringVar(&secret.client, "client", "", "client_id")
				fs.DurationVar(&secret.grace, "grace", 0, "how long the secret keeps working (at most 24h)")
			},
			func(s *adminSession, args []string) (proto.Message, error) {
				id, err := oneArg(args)
				if err != nil {
					return nil, err
				}
				return s.registry.RevokeClientSecret(s.ctx, &registryv1.RevokeClientSecretRequest{ClientId: secret.client, SecretId: id,
					GraceSeconds: int32(secret.grace / time.Second)})
			}),
	}
	var key struct{ client, file string }
	keyClient := func(fs *flag.FlagSet) { fs.StringVar(&key.client, "client", "", "client_id") }
	keyCmds := []*ffcli.Command{
		call("add", "hnsec admin key add --client ID --jwk-file FILE", "register a public JWK for private_key_jwt",
			func(fs *flag.FlagSet) {
				keyClient(fs)
				fs.StringVar(&key.file, "jwk-file", "", "file holding the public JWK (JSON)")
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				jwk, err := os.ReadFile(key.file)
				if err != nil {
					return nil, err
				}
				return s.registry.AddClientKey(s.ctx, &registryv1.AddClientKeyRequest{ClientId: key.client, Jwk: string(jwk)})
			}),
		call("list", "hnsec admin key list --client ID", "list a client's public keys", keyClient,
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.ListClientKeys(s.ctx, &registryv1.ListClientKeysRequest{ClientId: key.client})
			}),
		call("remove", "hnsec admin key remove --client ID [--] KID (-- before a kid that starts with -)", "remove a public key", keyClient,
			func(s *adminSession, args []string) (proto.Message, error) {
				kid, err := oneArg(args)
				if err != nil {
					return nil, err
				}
				return s.registry.RemoveClientKey(s.ctx, &registryv1.RemoveClientKeyRequest{ClientId: key.client, Kid: kid})
			}),
	}
	var audit struct{ objectType, objectID string }
	auditCmds := []*ffcli.Command{
		call("list", "hnsec admin audit list [--type T] [--id ID] [--page-size N] [--page-token T]", "list the audit trail, newest first",
			func(fs *flag.FlagSet) {
				fs.StringVar(&audit.objectType, "type", "", "only this object type (vendor, client_system, organisation, client, ...)")
				fs.StringVar(&audit.objectID, "id", "", "only this object")
				paging(fs)
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				return s.registry.ListAuditEvents(s.ctx, &registryv1.ListAuditEventsRequest{ObjectType: audit.objectType, ObjectId: audit.objectID,
					PageSize: int32(pageSize), PageToken: pageToken})
			}),
	}
	var def struct {
		guid, navn, part, typePi string
		omfang                   flagx.StringList
	}
	pvkCmds := []*ffcli.Command{
		call("definition-create", "hnsec admin pvk definition-create --guid G --navn N --part P --type samtykke|reservasjon|tilgangsbegrensning [--omfang KODE:LOGISK:PRESISERING ...]",
			"register a privacy setting definition",
			func(fs *flag.FlagSet) {
				fs.StringVar(&def.guid, "guid", "", "definisjonGuid")
				fs.StringVar(&def.navn, "navn", "", "definisjonNavn")
				fs.StringVar(&def.part, "part", "", "partKode of the owning party")
				fs.StringVar(&def.typePi, "type", "", "typePi")
				fs.Var(&def.omfang, "omfang", "omfangElement as KODE:LOGISK:PRESISERING (repeatable)")
			},
			func(s *adminSession, _ []string) (proto.Message, error) {
				d := &pvkv1.Definisjon{DefinisjonGuid: def.guid, DefinisjonNavn: def.navn, PartKode: def.part, TypePi: def.typePi}
				for _, o := range def.omfang {
					parts := strings.SplitN(o+"::", ":", 3)
					d.OmfangElementer = append(d.OmfangElementer, &pvkv1.OmfangElement{OmfangKode: parts[0], LogiskOmfang: parts[1],
						Presisering: strings.TrimSuffix(parts[2], "::")})
				}
				return pvkv1.NewPrivacySettingsServiceClient(s.conn).CreateDefinition(s.ctx, &pvkv1.CreateDefinitionRequest{Definisjon: d})
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
			Exec: groupExec(cmds),
		}
	}
	groups := []*ffcli.Command{
		group("vendor", "system vendors", vendorCmds),
		group("system", "client systems", systemCmds),
		group("org", "organisations", orgCmds),
		group("client", "client configurations", clientCmds),
		group("secret", "client secrets", secretCmds),
		group("key", "client public keys (private_key_jwt)", keyCmds),
		group("api", "APIs and their scopes", apiCmds),
		group("grant", "access grants", grantCmds),
		group("token", "access tokens", tokenCmds),
		group("audit", "the registry's audit trail", auditCmds),
		group("pvk", "PVK privacy setting definitions and subscriptions", append(pvkCmds,
			group("subscription", "the subscriber's subscriptions (as the client in --credentials-file)",
				subscriptionCommands(&cfg, call, withID, byID)))),
	}
	return &ffcli.Command{
		Name: "admin", ShortUsage: "hnsec admin <vendor|system|org|client|secret|key|api|grant|token|audit|pvk> <command> [flags]",
		ShortHelp:   "administer hnsec over gRPC (as the operator, or --credentials-file for another admin credential)",
		FlagSet:     fs,
		Subcommands: groups,
		Exec:        groupExec(groups),
	}
}

// openAdminSession reads the actor's credential, gets an access token with its scope and returns a context
// that presents it.
func openAdminSession(ctx context.Context, cfg adminConfig, out io.Writer) (*adminSession, error) {
	path := cfg.CredentialsFile
	if path == "" {
		path = filepath.Join(cfg.DataDir, cfg.as.file)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("credentials: %w (start hnsec once, or pass --data-dir or --credentials-file)", err)
	}
	var cred registry.Credentials
	if err := json.Unmarshal(b, &cred); err != nil {
		return nil, fmt.Errorf("credentials %s: %w", path, err)
	}
	var opts []grpc.DialOption
	if cfg.TLSCA != "" {
		opt, err := grpcx.ClientDialOption(cfg.TLSCA)
		if err != nil {
			return nil, err
		}
		opts = append(opts, opt)
	}
	conn, err := grpcx.Dial(cfg.Addr, "", opts...)
	if err != nil {
		return nil, err
	}
	tok, err := stsv1.NewTokenServiceClient(conn).Token(ctx, &stsv1.TokenRequest{
		GrantType: sts.GrantClientCredentials, ClientId: cred.ClientID, ClientSecret: cred.ClientSecret, Scope: cfg.as.scope,
	})
	if status.Code(err) == codes.Unavailable {
		conn.Close()
		return nil, fmt.Errorf("cannot reach hnsec at %s (is it running? --addr names another)", cfg.Addr)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("access token: %w", describe(err))
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

// interleaved parses the flags that follow a command's first positional argument (`client get ID -o json`):
// the flag package stops at the first argument that is not a flag. Everything after "--" is positional.
func interleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	pos, rest := args[:1:1], args[1:]
	for len(rest) > 0 {
		var after []string
		if i := slices.Index(rest, "--"); i >= 0 {
			rest, after = rest[:i], rest[i+1:]
		}
		for len(rest) > 0 {
			if err := fs.Parse(rest); err != nil {
				return nil, err
			}
			if rest = fs.Args(); len(rest) > 0 {
				pos, rest = append(pos, rest[0]), rest[1:]
			}
		}
		pos, rest = append(pos, after...), nil
	}
	return pos, nil
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

// oidcSetFlags are the flags of `hnsec admin client oidc-set`; each one given names its field in the
// update mask.
type oidcSetFlags struct {
	fs                                                      *flag.FlagSet
	client, clientType, appType, initiateLogin, logout, bcl string
	redirect, postLogout                                    uriList
	scopes, audiences                                       flagx.StringList
	par, mtls, refresh                                      bool
	window, refreshCap                                      time.Duration
}

// oidcFlagPaths maps each flag to the OidcSettings field it sets.
var oidcFlagPaths = map[string]string{
	"client-type": "client_type", "application-type": "application_type", "redirect-uri": "redirect_uris",
	"post-logout-redirect-uri": "post_logout_redirect_uris", "initiate-login-uri": "initiate_login_uri",
	"require-par": "require_par", "require-mtls": "require_mtls", "refresh-allowed": "refresh_allowed",
	"refresh-window": "refresh_window", "refresh-cap": "refresh_cap", "logout-mode": "logout_mode",
	"backchannel-logout-uri": "backchannel_logout_uri", "allowed-scope": "allowed_scopes",
	"bilateral-audience": "bilateral_audiences",
}

func (f *oidcSetFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.client, "client", "", "client configuration id")
	fs.StringVar(&f.clientType, "client-type", "", "confidential or public (a public client is a native app and always requires PAR and mTLS)")
	fs.StringVar(&f.appType, "application-type", "", "web or native")
	fs.Var(&f.redirect, "redirect-uri", "registered redirect URI, exact (repeatable; an empty value clears the list)")
	fs.Var(&f.postLogout, "post-logout-redirect-uri", "registered post-logout redirect URI (repeatable; an empty value clears the list)")
	fs.StringVar(&f.initiateLogin, "initiate-login-uri", "", "where the Helsenorge portal starts a login (uthopp)")
	fs.BoolVar(&f.par, "require-par", false, "require pushed authorization requests")
	fs.BoolVar(&f.mtls, "require-mtls", false, "require a TLS client certificate")
	fs.BoolVar(&f.refresh, "refresh-allowed", false, "allow refresh tokens (with offline_access)")
	fs.DurationVar(&f.window, "refresh-window", 0, "how far /extend slides a refresh token (default 30m)")
	fs.DurationVar(&f.refreshCap, "refresh-cap", 0, "a refresh token's absolute lifetime (default 12h)")
	fs.StringVar(&f.logout, "logout-mode", "", "independent or linked")
	fs.StringVar(&f.bcl, "backchannel-logout-uri", "", "back-channel logout URI (required for linked logout)")
	fs.Var(&f.scopes, "allowed-scope", "scope the client may ask for in a citizen login (repeatable)")
	fs.Var(&f.audiences, "bilateral-audience", "bilaterally agreed audience of the client's access tokens (repeatable)")
}

// request builds the update from the flags given.
func (f *oidcSetFlags) request() (*registryv1.UpdateClientOidcSettingsRequest, error) {
	o := &registryv1.OidcSettings{
		RedirectUris: f.redirect, PostLogoutRedirectUris: f.postLogout, InitiateLoginUri: f.initiateLogin,
		RequirePar: f.par, RequireMtls: f.mtls, RefreshAllowed: f.refresh, BackchannelLogoutUri: f.bcl,
		AllowedScopes: f.scopes, BilateralAudiences: f.audiences,
	}
	var mask []string
	var err error
	f.fs.Visit(func(fl *flag.Flag) {
		path, ok := oidcFlagPaths[fl.Name]
		if !ok {
			return
		}
		mask = append(mask, path)
		switch fl.Name {
		case "client-type":
			o.ClientType, err = enumFlag[registryv1.ClientType](fl.Name, fl.Value.String(), "CLIENT_TYPE_", registryv1.ClientType_value, err)
		case "application-type":
			o.ApplicationType, err = enumFlag[registryv1.ApplicationType](fl.Name, fl.Value.String(), "APPLICATION_TYPE_", registryv1.ApplicationType_value, err)
		case "logout-mode":
			o.LogoutMode, err = enumFlag[registryv1.LogoutMode](fl.Name, fl.Value.String(), "LOGOUT_MODE_", registryv1.LogoutMode_value, err)
		case "refresh-window":
			o.RefreshWindow = durationpb.New(f.window)
		case "refresh-cap":
			o.RefreshCap = durationpb.New(f.refreshCap)
		}
	})
	if err != nil {
		return nil, err
	}
	if f.client == "" {
		return nil, errors.New("--client is required")
	}
	return &registryv1.UpdateClientOidcSettingsRequest{ClientId: f.client, OidcSettings: o,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: mask}}, nil
}

// enumFlag parses a flag naming an enum value in lower case without its prefix ("public"), keeping an
// earlier error.
func enumFlag[E ~int32](name, v, prefix string, values map[string]int32, err error) (E, error) {
	if err != nil {
		return 0, err
	}
	n, ok := values[prefix+strings.ToUpper(v)]
	if !ok || n == 0 {
		return 0, fmt.Errorf("--%s %q is not one of the allowed values", name, v)
	}
	return E(n), nil
}

// uriList is a repeatable flag of URIs, each taken whole (a URI may hold commas); an empty value clears
// the list.
type uriList []string

// String implements flag.Value.
func (l *uriList) String() string { return strings.Join(*l, " ") }

// Set implements flag.Value.
func (l *uriList) Set(v string) error {
	if v == "" {
		*l = nil
		return nil
	}
	*l = append(*l, v)
	return nil
}
