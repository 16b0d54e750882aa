package standin

import (
	"encoding/json"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hnsec/hnsec/pkg/flagx"
)

// Defaults of the stand-in's static client (the Helsenorge OP as ID-porten's relying party).
const (
	// DevClientID is the OP's client_id at the stand-in.
	DevClientID = "helsenorge-oidcprov"
	// DevCallbackPath is the OP's redirect URI at ID-porten, under the public base (ours).
	DevCallbackPath = "/sts/oidcprov/idporten/callback"
	// DevClientFile is where the static client's credentials are written in the data directory (0600).
	DevClientFile = "dev-idporten-client.json"
	// IssuerPath is the stand-in's issuer path under the public base.
	IssuerPath = "/idporten-standin"
)

// Config is the stand-ins' part of `hnsec serve`.
type Config struct {
	// IDP starts the ID-porten stand-in without --dev (which always starts it).
	IDP bool
	// RedirectURIs are more redirect (and post-logout) URIs of the static client, e.g. a vendor's own RP.
	RedirectURIs flagx.StringList
}

// RegisterFlags registers the stand-ins' flags.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.BoolVar(&c.IDP, "standin-idp", false, "serve the ID-porten stand-in at <public-url>"+IssuerPath+" with the test citizens of <data-dir>/"+CitizensFile+" (always on with --dev; never in production)")
	fs.Var(&c.RedirectURIs, "standin-idp-redirect-uri", "another redirect URI of the stand-in's static client "+DevClientID+" (repeatable; default only <public-url>"+DevCallbackPath+")")
}

// DevClient is what DevClientFile holds: how the OP (or a vendor's RP) reaches the stand-in.
type DevClient struct {
	Issuer       string   `json:"issuer"`
	ClientID     string   `json:"client_id"`
	ClientSecret string   `json:"client_secret"`
	RedirectURIs []string `json:"redirect_uris"`
}

// NewDevIDPorten starts nothing: it loads (or creates) the stand-in's key material and test citizens in
// dataDir, writes DevClientFile, and builds the stand-in for the public base URL.
func NewDevIDPorten(dataDir, base string, cfg Config, log *slog.Logger) (*IDPorten, *Population, error) {
	base = strings.TrimRight(base, "/")
	st, err := LoadOrCreateState(dataDir)
	if err != nil {
		return nil, nil, err
	}
	pop, err := SeedPopulation(dataDir, time.Now())
	if err != nil {
		return nil, nil, err
	}
	client := DevClient{Issuer: base + IssuerPath, ClientID: DevClientID, ClientSecret: st.ClientSecret,
		RedirectURIs: append([]string{base + DevCallbackPath}, cfg.RedirectURIs...)}
	b, err := json.MarshalIndent(client, "", "  ")
	if err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(filepath.Join(dataDir, DevClientFile), append(b, '\n'), 0o600); err != nil {
		return nil, nil, err
	}
	idp, err := NewIDPorten(IDPortenConfig{
		Issuer: client.Issuer, Population: pop, SigningKey: rsaKey(st), PairwiseSalt: st.PairwiseSalt, Log: log,
		Clients: []Client{{ID: client.ClientID, Secret: client.ClientSecret, RedirectURIs: client.RedirectURIs, PostLogoutRedirectURIs: client.RedirectURIs}},
	})
	return idp, pop, err
}
