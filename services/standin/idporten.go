package standin

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// ID-porten's levels of assurance (acr) and the amr of every stand-in login.
const (
	ACRSubstantial = "idporten-loa-substantial"
	ACRHigh        = "idporten-loa-high"
	amrTestID      = "TestID"
)

// Lifetimes of what the stand-in issues (ours; ID-porten documents 120 s access and ID tokens).
const (
	codeLifetime    = 60 * time.Second
	tokenLifetime   = 120 * time.Second
	sessionLifetime = 2 * time.Hour
	pendingLifetime = 10 * time.Minute
)

// StateFile is the stand-in's key material in the data directory: its ID-token signing key, the salt of
// its pairwise subjects and the secret of the static client, so that tokens and subjects survive a restart.
const StateFile = "idporten-standin.json"

// Client is a relying party of the stand-in (the Helsenorge OP): a static client configured by the
// process, authenticated at /token and /revoke with client_secret_basic or client_secret_post.
type Client struct {
	ID                     string
	Secret                 string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
}

// IDPortenConfig configures the ID-porten stand-in.
type IDPortenConfig struct {
	// Issuer is <public base>/idporten-standin; its path prefixes every endpoint.
	Issuer     string
	Clients    []Client
	Population *Population
	// SigningKey signs ID tokens (RS256); PairwiseSalt makes each client's subjects its own.
	SigningKey   *rsa.PrivateKey
	PairwiseSalt []byte
	Log          *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// IDPorten is the ID-porten stand-in: an OpenID Connect provider with discovery, JWKS, /authorize
// (authorization code with PKCE S256; headless with login_hint=testid:<pid>[_<acr>], else a login page),
// /token, /revoke and /logout, issuing ID tokens with ID-porten's claims.
type IDPorten struct {
	cfg     IDPortenConfig
	prefix  string
	key     jose.JSONWebKey
	signer  jose.Signer
	clients map[string]Client
	mux     *http.ServeMux

	mu       sync.Mutex
	codes    map[string]*grant
	pending  map[string]*pending
	sessions map[string]*session
	tokens   map[string]*accessToken
}

// grant is an issued authorization code's authorization.
type grant struct {
	req      authRequest
	pid, acr string
	sid      string
	authTime time.Time
	expires  time.Time
}

// session is a browser's login at the stand-in (cookie), for single sign-on and /logout.
type session struct {
	sid, pid, acr string
	authTime      time.Time
	expires       time.Time
}

// accessToken is an issued access token, for /revoke.
type accessToken struct {
	clientID string
	expires  time.Time
}

// NewIDPorten builds the stand-in. It only constructs: nothing runs until its handler serves.
func NewIDPorten(cfg IDPortenConfig) (*IDPorten, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("idporten stand-in: the issuer must be an absolute http(s) URL")
	}
	if cfg.Population == nil || cfg.SigningKey == nil || len(cfg.PairwiseSalt) < 16 {
		return nil, errors.New("idporten stand-in: population, signing key and pairwise salt are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	s := &IDPorten{cfg: cfg, prefix: strings.TrimRight(u.Path, "/"), clients: map[string]Client{},
		codes: map[string]*grant{}, pending: map[string]*pending{}, sessions: map[string]*session{}, tokens: map[string]*accessToken{}}
	for _, c := range cfg.Clients {
		if c.ID == "" || c.Secret == "" || len(c.RedirectURIs) == 0 {
			return nil, errors.New("idporten stand-in: a client needs an id, a secret and a redirect URI")
		}
		s.clients[c.ID] = c
	}
	s.key = jose.JSONWebKey{Key: cfg.SigningKey, Algorithm: string(jose.RS256), Use: "sig"}
	pub := s.key.Public()
	thumb, err := pub.Thumbprint(cryptoSHA256)
	if err != nil {
		return nil, err
	}
	s.key.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	s.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: s.key}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	s.routes()
	return s, nil
}

// Prefix is the path every endpoint is under (the issuer's path, /idporten-standin).
func (s *IDPorten) Prefix() string { return s.prefix }

// ServeHTTP serves the stand-in's endpoints.
func (s *IDPorten) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *IDPorten) routes() {
	p := s.prefix
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET "+p+"/.well-known/openid-configuration", s.discovery)
	s.mux.HandleFunc("GET "+p+"/jwks.json", s.jwks)
	s.mux.HandleFunc("GET "+p+"/authorize", s.authorize)
	s.mux.HandleFunc("POST "+p+"/login", s.login)
	s.mux.HandleFunc("POST "+p+"/token", s.token)
	s.mux.HandleFunc("POST "+p+"/revoke", s.revoke)
	s.mux.HandleFunc("GET "+p+"/logout", s.logout)
	s.mux.HandleFunc("POST "+p+"/logout", s.logout)
}

// discovery serves the OpenID Provider metadata.
func (s *IDPorten) discovery(w http.ResponseWriter, _ *http.Request) {
	iss := s.cfg.Issuer
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                         iss,
		"authorization_endpoint":                         iss + "/authorize",
		"token_endpoint":                                 iss + "/token",
		"jwks_uri":                                       iss + "/jwks.json",
		"revocation_endpoint":                            iss + "/revoke",
		"end_session_endpoint":                           iss + "/logout",
		"response_types_supported":                       []string{"code"},
		"response_modes_supported":                       []string{"query"},
		"grant_types_supported":                          []string{"authorization_code"},
		"subject_types_supported":                        []string{"pairwise"},
		"id_token_signing_alg_values_supported":          []string{"RS256"},
		"token_endpoint_auth_methods_supported":          []string{"client_secret_basic", "client_secret_post"},
		"revocation_endpoint_auth_methods_supported":     []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":               []string{"S256"},
		"scopes_supported":                               []string{"openid", "profile"},
		"acr_values_supported":                           []string{ACRSubstantial, ACRHigh},
		"claims_supported":                               []string{"iss", "aud", "sub", "pid", "acr", "amr", "auth_time", "nonce", "sid", "locale", "at_hash", "iat", "exp", "jti"},
		"ui_locales_supported":                           []string{"nb", "nn", "en", "se"},
		"authorization_response_iss_parameter_supported": true,
	})
}

// jwks serves the public signing key.
func (s *IDPorten) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{s.key.Public()}})
}

// pairwiseSub is the subject of pid for one client: HMAC-SHA256 over the client and the pid under the
// stand-in's salt, base64url, like ID-porten's pairwise identifiers (stable per client, unlinkable across).
func (s *IDPorten) pairwiseSub(clientID, pid string) string {
	return base64.RawURLEncoding.EncodeToString(hmacSHA256(s.cfg.PairwiseSalt, clientID+"\x00"+pid))
}

// idToken signs the ID token of one grant for one access token.
func (s *IDPorten) idToken(g *grant, at string, now time.Time) (string, error) {
	claims := map[string]any{
		"iss":       s.cfg.Issuer,
		"aud":       g.req.clientID,
		"sub":       s.pairwiseSub(g.req.clientID, g.pid),
		"pid":       g.pid,
		"acr":       g.acr,
		"amr":       []string{amrTestID},
		"auth_time": g.authTime.Unix(),
		"sid":       g.sid,
		"locale":    "nb",
		"at_hash":   leftHash(at),
		"iat":       now.Unix(),
		"exp":       now.Add(tokenLifetime).Unix(),
		"jti":       randomToken(16),
	}
	if g.req.nonce != "" {
		claims["nonce"] = g.req.nonce
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := s.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// DevState is the stand-in's persistent key material (StateFile).
type DevState struct {
	SigningKey   jose.JSONWebKey `json:"signingKey"`
	PairwiseSalt []byte          `json:"pairwiseSalt"`
	ClientSecret string          `json:"clientSecret"`
}

// LoadOrCreateState reads <dataDir>/idporten-standin.json, creating it (mode 0600) on the first start.
func LoadOrCreateState(dataDir string) (*DevState, error) {
	path := filepath.Join(dataDir, StateFile)
	b, err := os.ReadFile(path)
	if err == nil {
		var st DevState
		if err := json.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if _, ok := st.SigningKey.Key.(*rsa.PrivateKey); !ok || len(st.PairwiseSalt) < 16 || st.ClientSecret == "" {
			return nil, fmt.Errorf("%s: incomplete; delete it to start over", path)
		}
		return &st, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	st := &DevState{SigningKey: jose.JSONWebKey{Key: key, Algorithm: string(jose.RS256)}, PairwiseSalt: make([]byte, 32), ClientSecret: randomToken(32)}
	_, _ = rand.Read(st.PairwiseSalt)
	if b, err = json.Marshal(st); err != nil {
		return nil, err
	}
	return st, os.WriteFile(path, b, 0o600)
}

// rsaKey is the state's signing key (LoadOrCreateState checked its type).
func rsaKey(st *DevState) *rsa.PrivateKey {
	k, _ := st.SigningKey.Key.(*rsa.PrivateKey)
	return k
}

// writeJSON writes v as a JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
