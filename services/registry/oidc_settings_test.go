package registry

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
)

// The OpenID Connect settings of a client are checked as a whole, each refusal with its exact message.
func TestOIDCSettingsValidation(t *testing.T) {
	const (
		public = registryv1.ClientType_CLIENT_TYPE_PUBLIC
		native = registryv1.ApplicationType_APPLICATION_TYPE_NATIVE
		linked = registryv1.LogoutMode_LOGOUT_MODE_LINKED
	)
	web := func(uris ...string) *registryv1.OidcSettings { return &registryv1.OidcSettings{RedirectUris: uris} }
	app := func(uris ...string) *registryv1.OidcSettings {
		return &registryv1.OidcSettings{ClientType: public, ApplicationType: native, RedirectUris: uris}
	}
	many := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = "https://rp.example.no/cb" + strings.Repeat("x", i)
		}
		return out
	}
	long := "https://rp.example.no/" + strings.Repeat("a", 2000-len("https://rp.example.no/"))
	tests := []struct {
		name    string
		in      *registryv1.OidcSettings
		paths   []string
		wantErr string
	}{
		{name: "https", in: web("https://rp.example.no/cb?x=1")},
		{name: "http on loopback", in: web("http://localhost:4010/uthopp/callback", "http://127.0.0.1/cb", "http://[::1]:80/cb")},
		{name: "2000 characters", in: web(long)},
		{name: "20 URIs", in: &registryv1.OidcSettings{RedirectUris: many(20)}},
		{name: "native private-use scheme", in: app("no.example.app:/cb", "https://app.example.no/cb")},
		{name: "public app requires PAR and mTLS unasked", in: app("no.example.app:/cb")},
		{name: "linked logout", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"}, LogoutMode: linked,
			BackchannelLogoutUri: "https://rp.example.no/logout"}, paths: []string{"redirect_uris", "logout_mode", "backchannel_logout_uri"}},
		{name: "refresh window and cap", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"},
			RefreshWindow: durationpb.New(time.Minute), RefreshCap: durationpb.New(time.Minute)}},

		{name: "no redirect URI", in: web(), wantErr: "redirect_uris: at least one is required"},
		{name: "21 URIs", in: &registryv1.OidcSettings{RedirectUris: many(21)}, wantErr: "redirect_uris: at most 20"},
		{name: "2001 characters", in: web(long + "a"), wantErr: "redirect_uris: a URI is longer than 2000 characters"},
		{name: "relative", in: web("/cb"), wantErr: `redirect_uris: "/cb" is not an absolute URI`},
		{name: "https without host", in: web("https:/cb"), wantErr: `redirect_uris: "https:/cb" must use https (http only on a loopback address)`},
		{name: "fragment", in: web("https://rp.example.no/cb#x"), wantErr: `redirect_uris: "https://rp.example.no/cb#x" has a fragment`},
		{name: "empty fragment", in: web("https://rp.example.no/cb#"), wantErr: `redirect_uris: "https://rp.example.no/cb#" has a fragment`},
		{name: "http elsewhere", in: web("http://rp.example.no/cb"), wantErr: `redirect_uris: "http://rp.example.no/cb" must use https (http only on a loopback address)`},
		{name: "http on a lookalike", in: web("http://localhost.example.no/cb"), wantErr: `redirect_uris: "http://localhost.example.no/cb" must use https (http only on a loopback address)`},
		{name: "private-use scheme on the web", in: web("no.example.app:/cb"), wantErr: `redirect_uris: "no.example.app:/cb" must use https (http only on a loopback address)`},
		{name: "native scheme without a dot", in: app("myapp:/cb"), wantErr: `redirect_uris: "myapp:/cb" must use https, http on a loopback address or a private-use scheme (as no.example.app:/cb)`},
		{name: "white space", in: web("https://rp.example.no/c b"), wantErr: `redirect_uris: "https://rp.example.no/c b" has white space, control or non-ASCII characters`},
		{name: "listed twice", in: web("https://rp.example.no/cb", "https://rp.example.no/cb"), wantErr: `redirect_uris: "https://rp.example.no/cb" is listed twice`},
		{name: "post-logout URI", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"}, PostLogoutRedirectUris: []string{"http://rp.example.no/"}},
			wantErr: `post_logout_redirect_uris: "http://rp.example.no/" must use https (http only on a loopback address)`},
		{name: "initiate login URI", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"}, InitiateLoginUri: "rp.example.no/start"},
			wantErr: `initiate_login_uri: "rp.example.no/start" is not an absolute URI`},
		{name: "public web client", in: &registryv1.OidcSettings{ClientType: public, RedirectUris: []string{"https://rp.example.no/cb"}},
			wantErr: "a public client must be a native app (application_type native)"},
		{name: "public client without PAR", in: &registryv1.OidcSettings{ClientType: public, ApplicationType: native, RedirectUris: []string{"no.example.app:/cb"}},
			paths: []string{"client_type", "application_type", "redirect_uris", "require_par"}, wantErr: "a public client must require PAR"},
		{name: "public client without mTLS", in: &registryv1.OidcSettings{ClientType: public, ApplicationType: native, RedirectUris: []string{"no.example.app:/cb"}},
			paths: []string{"client_type", "application_type", "redirect_uris", "require_mtls"}, wantErr: "a public client must require mTLS"},
		{name: "unknown client type", in: &registryv1.OidcSettings{ClientType: 7, RedirectUris: []string{"https://rp.example.no/cb"}},
			wantErr: "client_type must be confidential or public"},
		{name: "linked without back-channel URI", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"}, LogoutMode: linked},
			wantErr: "logout_mode linked requires a backchannel_logout_uri"},
		{name: "refresh window too short", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"}, RefreshWindow: durationpb.New(time.Second)},
			wantErr: "refresh_window must be from 60s to 24h"},
		{name: "refresh cap below window", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"}, RefreshWindow: durationpb.New(time.Hour),
			RefreshCap: durationpb.New(time.Minute)}, wantErr: "refresh_cap must be from refresh_window to 720h (30 days)"},
		{name: "bad scope", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"}, AllowedScopes: []string{"openid", `a"b`}},
			wantErr: `allowed_scopes: scope "a\"b" has a character not allowed in a scope`},
		{name: "scope twice", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"}, AllowedScopes: []string{"openid", "openid"}},
			wantErr: "allowed_scopes: openid is listed twice"},
		{name: "21 audiences", in: &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"}, BilateralAudiences: many(21)},
			wantErr: "bilateral_audiences: at most 20"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			paths := tc.paths
			if paths == nil { // the fields set
				tc.in.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
					paths = append(paths, string(fd.Name()))
					return true
				})
			}
			got, err := mergeOIDCSettings(defaultOIDCSettings(), tc.in, paths)
			if tc.wantErr != "" {
				require.Error(t, err)
				e := apierr.FromGRPC(err)
				require.Equal(t, apierr.InvalidRequest, e.Kind)
				require.Equal(t, tc.wantErr, e.Description)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.in.GetRedirectUris(), got.RedirectURIs, "redirect URIs are kept as exact strings")
			if got.ClientType == registryv1.ClientType_CLIENT_TYPE_PUBLIC {
				require.True(t, got.RequirePAR && got.RequireMTLS)
			}
		})
	}
}

// A first update starts from the defaults; later ones change only the fields their mask names, and a
// named field left unset goes back to its default.
func TestOIDCSettingsMerge(t *testing.T) {
	o, err := mergeOIDCSettings(defaultOIDCSettings(), &registryv1.OidcSettings{RedirectUris: []string{"https://rp.example.no/cb"},
		RefreshAllowed: true, ClientType: registryv1.ClientType_CLIENT_TYPE_PUBLIC}, []string{"redirect_uris", "refresh_allowed"})
	require.NoError(t, err)
	require.Equal(t, OIDCSettings{ClientType: registryv1.ClientType_CLIENT_TYPE_CONFIDENTIAL, ApplicationType: registryv1.ApplicationType_APPLICATION_TYPE_WEB,
		RedirectURIs: []string{"https://rp.example.no/cb"}, RefreshAllowed: true, RefreshWindow: 1800 * time.Second, RefreshCap: 12 * time.Hour,
		LogoutMode: registryv1.LogoutMode_LOGOUT_MODE_INDEPENDENT}, o)

	o.RefreshWindow = time.Hour
	o2, err := mergeOIDCSettings(o, &registryv1.OidcSettings{InitiateLoginUri: "https://rp.example.no/start"}, []string{"initiate_login_uri", "refresh_window"})
	require.NoError(t, err)
	require.Equal(t, "https://rp.example.no/start", o2.InitiateLoginURI)
	require.Equal(t, DefaultRefreshWindow, o2.RefreshWindow)
	require.Equal(t, o.RedirectURIs, o2.RedirectURIs)
	require.True(t, o2.RefreshAllowed)
}
