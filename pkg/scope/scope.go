// Package scope parses and checks OAuth2 scope strings (RFC 6749 3.3) and derives the audience (the API)
// a scope belongs to.
package scope

import (
	"fmt"
	"slices"
	"strings"
)

// Scopes hnsec itself defines.
const (
	// RegistryAdmin lets a token call the registry's admin API as the operator.
	RegistryAdmin = "hnsec:registry.admin"
	// Introspect lets a client configuration (an API) introspect access tokens.
	Introspect = "hnsec:introspection"
	// PVKRead lets a client read privacy settings (PVK).
	PVKRead = "nhn:helsenorge.eksternapi/personverninnstilling_read"
	// PVKWrite lets a client set privacy settings (PVK).
	PVKWrite = "nhn:helsenorge.eksternapi/personverninnstilling_write"
	// PVKReplication lets a client subscribe to PVK's changes.
	PVKReplication = "nhn:helsenorge.eksternapi/personverninnstilling_replikering"
)

// The scopes of citizen login through Helsenorge's OpenID Connect provider (OIDC.md section 1). They are
// OpenID Connect's bare names, not "<audience>/<name>": they belong to the platform API OIDCAudience,
// which lists them one by one.
const (
	// OpenID asks for an ID token (OpenID Connect Core 3.1.2.1).
	OpenID = "openid"
	// OfflineAccess asks for a refresh token, given only to clients allowed to refresh.
	OfflineAccess = "offline_access"
	// OIDCName asks for the citizen's names in the ID token (given_name, middle_name, family_name, name).
	OIDCName = "oidcnavn"
	// OIDCBirthdate asks for the citizen's birthdate in the ID token.
	OIDCBirthdate = "oidcfodselsdatoinformasjon"
	// OIDCPid asks for the citizen's fødselsnummer (pid) in the ID token.
	OIDCPid = "oidcfodselsnummer"
)

// OIDCAudience is the audience of the platform API that owns the citizen login scopes.
const OIDCAudience = "nhn:helsenorge.oidc"

// PlatformAPI is an API whose scopes hnsec itself checks. Platform APIs are created at bootstrap, only
// operators administer them, and no API owner can register their audiences or scopes.
type PlatformAPI struct {
	Audience, Name string
	Scopes         []string
	// Bare says the scopes are bare names (OpenID Connect's) rather than "<audience>/<name>": exactly
	// those listed belong to the API.
	Bare bool
}

// PlatformAudience is the audience of hnsec's own API, whose scopes are "hnsec:<name>".
const PlatformAudience = "hnsec"

// PlatformAPIs are every platform API with its scopes: a scope round 2 adds that hnsec checks goes here.
var PlatformAPIs = []PlatformAPI{
	{Audience: PlatformAudience, Name: "hnsec", Scopes: []string{RegistryAdmin, Introspect}},
	{Audience: Audience(PVKRead), Name: "Helsenorge eksterne API-er", Scopes: []string{PVKRead, PVKWrite, PVKReplication}},
	{Audience: OIDCAudience, Name: "Helsenorge innbyggerinnlogging (OpenID Connect)", Bare: true,
		Scopes: []string{OpenID, OfflineAccess, OIDCName, OIDCBirthdate, OIDCPid}},
}

// bareAPI returns the platform API with bare scopes that lists tok.
func bareAPI(tok string) (PlatformAPI, bool) {
	for _, p := range PlatformAPIs {
		if p.Bare && slices.Contains(p.Scopes, tok) {
			return p, true
		}
	}
	return PlatformAPI{}, false
}

// IsPlatformAudience reports whether audience is a platform API's.
func IsPlatformAudience(audience string) bool {
	return slices.ContainsFunc(PlatformAPIs, func(p PlatformAPI) bool { return p.Audience == audience })
}

// Reserved reports whether an API owner may never register the audience: a platform API's, a bare
// platform scope's name (openid, ...), hnsec's own names (hnsec, hnsec:*, hnsec.*), or one containing "/"
// (a scope's audience ends at its first "/").
func Reserved(audience string) bool {
	_, bare := bareAPI(audience)
	return IsPlatformAudience(audience) || bare || strings.HasPrefix(audience, PlatformAudience+":") ||
		strings.HasPrefix(audience, PlatformAudience+".") || strings.Contains(audience, "/")
}

// Belongs reports whether scope tok may be registered under audience: "<audience>/<name>", for hnsec's
// own API "hnsec:<name>", and for a platform API with bare scopes exactly those it lists.
func Belongs(tok, audience string) bool {
	if api, ok := bareAPI(tok); ok {
		return api.Audience == audience
	}
	for _, p := range PlatformAPIs {
		if p.Bare && p.Audience == audience {
			return false
		}
	}
	prefix := audience + "/"
	if audience == PlatformAudience {
		prefix = PlatformAudience + ":"
	}
	return len(tok) > len(prefix) && strings.HasPrefix(tok, prefix)
}

// IsPlatform reports whether tok is a scope only a platform API may hold: under a platform audience,
// hnsec's own prefix, or a bare scope a platform API lists (openid, ...).
func IsPlatform(tok string) bool {
	if _, ok := bareAPI(tok); ok {
		return true
	}
	return strings.HasPrefix(tok, PlatformAudience+":") || IsPlatformAudience(Audience(tok))
}

// MaxScopes bounds how many scopes one request or client may name.
const MaxScopes = 50

// Parse splits a space-separated scope string into its distinct scope tokens, in order, and checks each
// token's characters (%x21 / %x23-5B / %x5D-7E) and length.
func Parse(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, " ")
	out := make([]string, 0, len(parts))
	for _, p := range parts {
		if p == "" {
			return nil, fmt.Errorf("scope has an empty entry (double or edge space)")
		}
		if err := Check(p); err != nil {
			return nil, err
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) > MaxScopes {
		return nil, fmt.Errorf("more than %d scopes", MaxScopes)
	}
	return out, nil
}

// Check reports whether one scope token is well formed.
func Check(tok string) error {
	if tok == "" || len(tok) > 200 {
		return fmt.Errorf("scope must be 1 to 200 characters")
	}
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return fmt.Errorf("scope %q has a character not allowed in a scope", tok)
		}
	}
	return nil
}

// Audience is the API a scope belongs to: the part before the first "/" ("nhn:helsenorge.eksternapi"
// for "nhn:helsenorge.eksternapi/personverninnstilling_read"), or the whole scope when it has none.
func Audience(tok string) string {
	if i := strings.IndexByte(tok, '/'); i > 0 {
		return tok[:i]
	}
	return tok
}

// Audiences returns the distinct audiences of scopes, in order.
func Audiences(scopes []string) []string {
	out := make([]string, 0, 1)
	for _, s := range scopes {
		if a := Audience(s); !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
