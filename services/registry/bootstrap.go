package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"

	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/store"
)

// Credentials is a client credential written to the data directory (operator.json, dev-client.json).
type Credentials struct {
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	Scopes       []string `json:"scopes"`
}

// Files the registry writes into the data directory, each with mode 0600.
const (
	OperatorFile  = "operator.json"
	DevClientFile = "dev-client.json"
	DevAPIFile    = "dev-api.json"
)

// The deployment's own organisation (Norsk Helsenett SF) owns the bootstrap operator credential.
const nhnOrgnr = "994598759"

// Demo data seeded in dev mode. The ids are fixed so that seeding twice changes nothing.
var (
	demoVendor = Vendor{ID: "6f1c2d3e-0000-4000-8000-000000000001", Name: "Demo Leverandør AS", OrganisationNumber: "921000006"}
	demoOrg    = Organisation{Number: "971000007", Name: "Demo kommune"}
	demoSystem = ClientSystem{ID: "6f1c2d3e-0000-4000-8000-000000000002", VendorID: demoVendor.ID, Name: "Demo journalsystem",
		Description: "Demo client system seeded in dev mode", Status: registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_APPROVED}
	// DemoScopes are the scopes of the demo client configuration.
	DemoScopes = []string{scope.PVKRead, scope.PVKWrite, scope.PVKReplication}
)

// Bootstrap creates the platform APIs on every start, writes the operator credential on the first start
// (or whenever operator.json is missing) and, in dev mode, seeds the demo vendor, organisation, client
// system and client configuration and a demo API client allowed to introspect, returning the demo
// client's credentials (also in dev-client.json). It returns nil credentials when dev is false.
func (s *Server) Bootstrap(ctx context.Context, dataDir string, dev bool) (*Credentials, error) {
	if err := s.ensurePlatformAPIs(ctx); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(dataDir, OperatorFile)); errors.Is(err, os.ErrNotExist) {
		if err := s.ensure(s.store.CreateOrganisation(ctx, Organisation{Number: nhnOrgnr, Name: "Norsk helsenett SF", CreateTime: time.Now()})); err != nil {
			return nil, err
		}
		c, secret, err := s.createClient(ctx, Client{Name: "hnsec operator", OrganisationNumber: nhnOrgnr, Scopes: []string{AdminScope},
			AdminRole: registryv1.Role_ROLE_OPERATOR}, registryv1.GrantStatus_GRANT_STATUS_APPROVED)
		if err != nil {
			return nil, err
		}
		if err := writeCredentials(filepath.Join(dataDir, OperatorFile), Credentials{c.ID, secret, c.Scopes}); err != nil {
			return nil, err
		}
		s.log.Info("bootstrap operator credential written", "client_id", c.ID, "file", OperatorFile)
	}
	if !dev {
		return nil, nil
	}
	return s.seedDemo(ctx, dataDir)
}

// seedDemo seeds the demo entities, the demo client configuration (dev-client.json) and a demo API client
// allowed to introspect tokens (dev-api.json), keeping whichever already exist, and returns the demo
// client's credentials.
func (s *Server) seedDemo(ctx context.Context, dataDir string) (*Credentials, error) {
	now := time.Now()
	vendor, org, system := demoVendor, demoOrg, demoSystem
	vendor.CreateTime, org.CreateTime, system.CreateTime = now, now, now
	for _, err := range []error{
		s.store.CreateVendor(ctx, vendor),
		s.store.CreateOrganisation(ctx, org),
		s.store.CreateClientSystem(ctx, system),
	} {
		if err := s.ensure(err); err != nil {
			return nil, err
		}
	}
	if _, err := s.loadOrCreate(ctx, filepath.Join(dataDir, DevAPIFile),
		Client{Name: "Demo API", OrganisationNumber: nhnOrgnr, Scopes: []string{scope.Introspect}}); err != nil {
		return nil, err
	}
	return s.loadOrCreate(ctx, filepath.Join(dataDir, DevClientFile), Client{Name: "Ekstern testklient",
		OrganisationNumber: demoOrg.Number, ClientSystemID: demoSystem.ID, Scopes: DemoScopes})
}

// loadOrCreate returns the credentials in path while their client exists, or creates c and writes its
// credentials there.
func (s *Server) loadOrCreate(ctx context.Context, path string, c Client) (*Credentials, error) {
	if b, err := os.ReadFile(path); err == nil {
		var cred Credentials
		if json.Unmarshal(b, &cred) == nil {
			if _, err := s.store.GetClient(ctx, cred.ClientID); err == nil {
				return &cred, nil
			}
		}
	}
	created, secret, err := s.createClient(ctx, c, registryv1.GrantStatus_GRANT_STATUS_APPROVED)
	if err != nil {
		return nil, err
	}
	cred := Credentials{ClientID: created.ID, ClientSecret: secret, Scopes: created.Scopes}
	if err := writeCredentials(path, cred); err != nil {
		return nil, err
	}
	return &cred, nil
}

// ensure treats "already exists" as success.
func (s *Server) ensure(err error) error {
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil
	}
	return err
}

func writeCredentials(path string, c Credentials) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return os.Chmod(path, 0o600)
}
