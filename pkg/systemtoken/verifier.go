package systemtoken

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// Config describes what a receiver accepts.
type Config struct {
	// JWKSURL is the issuer's JWK Set, e.g. https://sts.example/sts/.well-known/jwks.json.
	JWKSURL string
	// Issuer the tokens must name.
	Issuer string
	// Audience is the receiver itself: tokens for anyone else are refused.
	Audience string
	// RequiredScopes must all be in the token's scp.
	RequiredScopes []string
	// Leeway allowed on iat and exp (default 30s).
	Leeway time.Duration
	// RefreshInterval is how often the JWK Set is fetched again (default 5m). A token naming an unknown kid
	// also triggers a fetch, at most every 10s.
	RefreshInterval time.Duration
	// HTTPClient fetches the JWK Set (default http.DefaultClient).
	HTTPClient *http.Client
}

// ErrInvalid wraps every reason a SystemToken is refused.
var ErrInvalid = errors.New("SystemToken not valid")

// Verifier checks SystemTokens against the issuer's live JWK Set.
type Verifier struct {
	cfg    Config
	keys   keyfunc.Keyfunc
	parser *jwt.Parser
}

// NewVerifier fetches the JWK Set and keeps it fresh until ctx ends.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.JWKSURL == "" || cfg.Issuer == "" || cfg.Audience == "" {
		return nil, errors.New("systemtoken: JWKSURL, Issuer and Audience are required")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = 5 * time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	remote, err := jwkset.NewStorageFromHTTP(cfg.JWKSURL, jwkset.HTTPClientStorageOptions{
		Ctx:             ctx,
		Client:          cfg.HTTPClient,
		HTTPTimeout:     10 * time.Second,
		RefreshInterval: cfg.RefreshInterval,
	})
	if err != nil {
		return nil, fmt.Errorf("systemtoken: fetch %s: %w", cfg.JWKSURL, err)
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs:          map[string]jwkset.Storage{cfg.JWKSURL: remote},
		RateLimitWaitMax:  5 * time.Second,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(10*time.Second), 1),
	})
	if err != nil {
		return nil, err
	}
	keys, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: client})
	if err != nil {
		return nil, err
	}
	return &Verifier{cfg: cfg, keys: keys, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256", "ES256", "EdDSA"}),
		jwt.WithIssuer(cfg.Issuer),
		jwt.WithAudience(cfg.Audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(cfg.Leeway),
	)}, nil
}

// Verify returns the claims of a valid SystemToken for this receiver, or an error wrapping ErrInvalid.
func (v *Verifier) Verify(ctx context.Context, token string) (Claims, error) {
	var c Claims
	t, err := v.parser.ParseWithClaims(token, &c, v.keys.KeyfuncCtx(ctx))
	if err != nil {
		return Claims{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if t.Header["typ_2"] != Type2 {
		return Claims{}, fmt.Errorf("%w: typ_2 is not %q", ErrInvalid, Type2)
	}
	scopes := strings.Fields(c.Scope)
	for _, s := range v.cfg.RequiredScopes {
		if !slices.Contains(scopes, s) {
			return Claims{}, fmt.Errorf("%w: scope %s missing", ErrInvalid, s)
		}
	}
	return c, nil
}
