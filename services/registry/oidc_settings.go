package registry

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/scope"
)

// OIDCSettings are a client configuration's OpenID Connect settings: how it logs citizens in through
// Helsenorge's OP (OIDC.md section 1, "Registry additions per client configuration"). The OP reads them
// through LookupClient; they change through UpdateClientOidcSettings.
type OIDCSettings struct {
	ClientType             registryv1.ClientType      `json:"client_type"`
	ApplicationType        registryv1.ApplicationType `json:"application_type"`
	RedirectURIs           []string                   `json:"redirect_uris"`
	PostLogoutRedirectURIs []string                   `json:"post_logout_redirect_uris,omitempty"`
	InitiateLoginURI       string                     `json:"initiate_login_uri,omitempty"`
	RequirePAR             bool                       `json:"require_par"`
	RequireMTLS            bool                       `json:"require_mtls"`
	RefreshAllowed         bool                       `json:"refresh_allowed"`
	RefreshWindow          time.Duration              `json:"refresh_window"`
	RefreshCap             time.Duration              `json:"refresh_cap"`
	LogoutMode             registryv1.LogoutMode      `json:"logout_mode"`
	BackchannelLogoutURI   string                     `json:"backchannel_logout_uri,omitempty"`
	AllowedScopes          []string                   `json:"allowed_scopes,omitempty"`
	BilateralAudiences     []string                   `json:"bilateral_audiences,omitempty"`
}

// Defaults and bounds of the OpenID Connect settings.
const (
	// DefaultRefreshWindow is how far /extend slides a refresh token's expiry unless configured.
	DefaultRefreshWindow = 1800 * time.Second
	// DefaultRefreshCap is a refresh token's absolute lifetime unless configured.
	DefaultRefreshCap = 12 * time.Hour

	minRefreshWindow = time.Minute
	maxRefreshWindow = 24 * time.Hour
	maxRefreshCap    = 30 * 24 * time.Hour
	maxURILen        = 2000
	maxURIs          = 20
	maxAudiences     = 20
)

// defaultOIDCSettings are what a client's first settings start from: a confidential web client,
// independent logout, the default refresh window and cap.
func defaultOIDCSettings() OIDCSettings {
	return OIDCSettings{
		ClientType:      registryv1.ClientType_CLIENT_TYPE_CONFIDENTIAL,
		ApplicationType: registryv1.ApplicationType_APPLICATION_TYPE_WEB,
		RefreshWindow:   DefaultRefreshWindow,
		RefreshCap:      DefaultRefreshCap,
		LogoutMode:      registryv1.LogoutMode_LOGOUT_MODE_INDEPENDENT,
	}
}

// oidcPaths are the fields of OidcSettings an update mask may name.
var oidcPaths = []string{"client_type", "application_type", "redirect_uris", "post_logout_redirect_uris",
	"initiate_login_uri", "require_par", "require_mtls", "refresh_allowed", "refresh_window", "refresh_cap",
	"logout_mode", "backchannel_logout_uri", "allowed_scopes", "bilateral_audiences"}

// UpdateClientOidcSettings implements ClientRegistryService.
func (s *Server) UpdateClientOidcSettings(ctx context.Context, req *registryv1.UpdateClientOidcSettingsRequest) (*registryv1.UpdateClientOidcSettingsResponse, error) {
	p, ctx, err := s.admin(ctx)
	if err != nil {
		return nil, err
	}
	paths, err := maskPaths(req.GetUpdateMask(), oidcPaths...)
	if err != nil {
		return nil, err
	}
	if _, err := s.ownClient(ctx, p, req.GetClientId()); err != nil {
		return nil, err
	}
	c, err := s.store.UpdateClient(ctx, req.GetClientId(), func(c Client) (Client, error) {
		o := defaultOIDCSettings()
		if c.OIDC != nil {
			o = *c.OIDC
		}
		next, err := mergeOIDCSettings(o, req.GetOidcSettings(), paths)
		if err != nil {
			return c, err
		}
		c.OIDC = &next
		return c, nil
	})
	if err != nil {
		return nil, storeError(err, "client")
	}
	s.log.Info("client oidc settings changed", "client_id", c.ID, "fields", strings.Join(paths, ","))
	s.clientChanged(c.ID)
	return &registryv1.UpdateClientOidcSettingsResponse{Client: toProto(c)}, nil
}

// mergeOIDCSettings returns o with the fields of in named in paths, checked as a whole. A named field
// left unset in in goes back to its default; a public client always requires PAR and mTLS.
func mergeOIDCSettings(o OIDCSettings, in *registryv1.OidcSettings, paths []string) (OIDCSettings, error) {
	def := defaultOIDCSettings()
	orDefault := func(d *durationpb.Duration, dflt time.Duration) time.Duration {
		if d == nil {
			return dflt
		}
		return d.AsDuration()
	}
	for _, path := range paths {
		switch path {
		case "client_type":
			o.ClientType = enumOr(in.GetClientType(), def.ClientType)
		case "application_type":
			o.ApplicationType = enumOr(in.GetApplicationType(), def.ApplicationType)
		case "redirect_uris":
			o.RedirectURIs = slices.Clone(in.GetRedirectUris())
		case "post_logout_redirect_uris":
			o.PostLogoutRedirectURIs = slices.Clone(in.GetPostLogoutRedirectUris())
		case "initiate_login_uri":
			o.InitiateLoginURI = in.GetInitiateLoginUri()
		case "require_par":
			o.RequirePAR = in.GetRequirePar()
		case "require_mtls":
			o.RequireMTLS = in.GetRequireMtls()
		case "refresh_allowed":
			o.RefreshAllowed = in.GetRefreshAllowed()
		case "refresh_window":
			o.RefreshWindow = orDefault(in.GetRefreshWindow(), def.RefreshWindow)
		case "refresh_cap":
			o.RefreshCap = orDefault(in.GetRefreshCap(), def.RefreshCap)
		case "logout_mode":
			o.LogoutMode = enumOr(in.GetLogoutMode(), def.LogoutMode)
		case "backchannel_logout_uri":
			o.BackchannelLogoutURI = in.GetBackchannelLogoutUri()
		case "allowed_scopes":
			o.AllowedScopes = slices.Clone(in.GetAllowedScopes())
		case "bilateral_audiences":
			o.BilateralAudiences = slices.Clone(in.GetBilateralAudiences())
		}
	}
	if o.ClientType == registryv1.ClientType_CLIENT_TYPE_PUBLIC {
		if slices.Contains(paths, "require_par") && !o.RequirePAR {
			return o, apierr.New(apierr.InvalidRequest, "a public client must require PAR")
		}
		if slices.Contains(paths, "require_mtls") && !o.RequireMTLS {
			return o, apierr.New(apierr.InvalidRequest, "a public client must require mTLS")
		}
		o.RequirePAR, o.RequireMTLS = true, true
	}
	return o, checkOIDCSettings(o)
}

// enumOr is v, or dflt when v is its enum's zero (unspecified).
func enumOr[E ~int32](v, dflt E) E {
	if v == 0 {
		return dflt
	}
	return v
}

// checkOIDCSettings checks a client's OpenID Connect settings as a whole, with the InvalidArgument
// messages the API documents.
func checkOIDCSettings(o OIDCSettings) error {
	bad := func(format string, args ...any) error { return apierr.New(apierr.InvalidRequest, format, args...) }
	if _, ok := registryv1.ClientType_name[int32(o.ClientType)]; !ok || o.ClientType == 0 {
		return bad("client_type must be confidential or public")
	}
	if _, ok := registryv1.ApplicationType_name[int32(o.ApplicationType)]; !ok || o.ApplicationType == 0 {
		return bad("application_type must be web or native")
	}
	if _, ok := registryv1.LogoutMode_name[int32(o.LogoutMode)]; !ok || o.LogoutMode == 0 {
		return bad("logout_mode must be independent or linked")
	}
	native := o.ApplicationType == registryv1.ApplicationType_APPLICATION_TYPE_NATIVE
	if o.ClientType == registryv1.ClientType_CLIENT_TYPE_PUBLIC {
		if !native {
			return bad("a public client must be a native app (application_type native)")
		}
		if !o.RequirePAR {
			return bad("a public client must require PAR")
		}
		if !o.RequireMTLS {
			return bad("a public client must require mTLS")
		}
	}
	if len(o.RedirectURIs) == 0 {
		return bad("redirect_uris: at least one is required")
	}
	if err := checkURIs("redirect_uris", o.RedirectURIs, native); err != nil {
		return err
	}
	if err := checkURIs("post_logout_redirect_uris", o.PostLogoutRedirectURIs, native); err != nil {
		return err
	}
	for _, f := range []struct{ name, uri string }{{"initiate_login_uri", o.InitiateLoginURI}, {"backchannel_logout_uri", o.BackchannelLogoutURI}} {
		if f.uri != "" {
			if err := checkURI(f.name, f.uri, false); err != nil {
				return err
			}
		}
	}
	if o.LogoutMode == registryv1.LogoutMode_LOGOUT_MODE_LINKED && o.BackchannelLogoutURI == "" {
		return bad("logout_mode linked requires a backchannel_logout_uri")
	}
	if o.RefreshWindow < minRefreshWindow || o.RefreshWindow > maxRefreshWindow {
		return bad("refresh_window must be from 60s to 24h")
	}
	if o.RefreshCap < o.RefreshWindow || o.RefreshCap > maxRefreshCap {
		return bad("refresh_cap must be from refresh_window to 720h (30 days)")
	}
	if len(o.AllowedScopes) > scope.MaxScopes {
		return bad("allowed_scopes: at most %d", scope.MaxScopes)
	}
	if err := checkTokens("allowed_scopes", o.AllowedScopes); err != nil {
		return err
	}
	if len(o.BilateralAudiences) > maxAudiences {
		return bad("bilateral_audiences: at most %d", maxAudiences)
	}
	return checkTokens("bilateral_audiences", o.BilateralAudiences)
}

// checkTokens checks a list of scopes or audiences: each well formed, none twice.
func checkTokens(field string, toks []string) error {
	for i, tok := range toks {
		if err := scope.Check(tok); err != nil {
			return apierr.New(apierr.InvalidRequest, "%s: %v", field, err)
		}
		if slices.Contains(toks[:i], tok) {
			return apierr.New(apierr.InvalidRequest, "%s: %s is listed twice", field, tok)
		}
	}
	return nil
}

// checkURIs checks a list of registered URIs: at most maxURIs, each valid (checkURI), none twice.
func checkURIs(field string, uris []string, native bool) error {
	if len(uris) > maxURIs {
		return apierr.New(apierr.InvalidRequest, "%s: at most %d", field, maxURIs)
	}
	for i, u := range uris {
		if err := checkURI(field, u, native); err != nil {
			return err
		}
		if slices.Contains(uris[:i], u) {
			return apierr.New(apierr.InvalidRequest, "%s: %q is listed twice", field, u)
		}
	}
	return nil
}

// checkURI checks one registered URI, which the OP compares as an exact string: at most maxURILen
// characters of visible ASCII, absolute, without a fragment, and https; http only on a loopback address
// (RFC 8252 7.3); for native apps also a private-use scheme, a reverse domain name (RFC 8252 7.1).
func checkURI(field, u string, native bool) error {
	bad := func(format string, args ...any) error {
		return apierr.New(apierr.InvalidRequest, "%s: "+format, append([]any{field}, args...)...)
	}
	if len(u) > maxURILen {
		return bad("a URI is longer than %d characters", maxURILen)
	}
	for i := 0; i < len(u); i++ {
		if u[i] <= ' ' || u[i] >= 0x7f {
			return bad("%q has white space, control or non-ASCII characters", u)
		}
	}
	p, err := url.Parse(u)
	if err != nil || p.Scheme == "" {
		return bad("%q is not an absolute URI", u)
	}
	if strings.Contains(u, "#") {
		return bad("%q has a fragment", u)
	}
	switch {
	case p.Scheme == "https" && p.Host != "":
		return nil
	case p.Scheme == "http" && p.Host != "" && loopback(p.Hostname()):
		return nil
	case native && strings.Contains(p.Scheme, ".") && p.Host == "":
		return nil
	case native:
		return bad("%q must use https, http on a loopback address or a private-use scheme (as no.example.app:/cb)", u)
	}
	return bad("%q must use https (http only on a loopback address)", u)
}

// loopback reports whether host is localhost or a loopback IP address.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// oidcProto is the API form of a client's settings (nil for none).
func oidcProto(o *OIDCSettings) *registryv1.OidcSettings {
	if o == nil {
		return nil
	}
	return &registryv1.OidcSettings{
		ClientType:             o.ClientType,
		ApplicationType:        o.ApplicationType,
		RedirectUris:           slices.Clone(o.RedirectURIs),
		PostLogoutRedirectUris: slices.Clone(o.PostLogoutRedirectURIs),
		InitiateLoginUri:       o.InitiateLoginURI,
		RequirePar:             o.RequirePAR,
		RequireMtls:            o.RequireMTLS,
		RefreshAllowed:         o.RefreshAllowed,
		RefreshWindow:          durationpb.New(o.RefreshWindow),
		RefreshCap:             durationpb.New(o.RefreshCap),
		LogoutMode:             o.LogoutMode,
		BackchannelLogoutUri:   o.BackchannelLogoutURI,
		AllowedScopes:          slices.Clone(o.AllowedScopes),
		BilateralAudiences:     slices.Clone(o.BilateralAudiences),
	}
}
