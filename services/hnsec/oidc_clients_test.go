package main

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/scope"
)

// Citizen login (issue 16), the registry's side: an organisation's admins set their client
// configuration's OpenID Connect settings through the CLI and REST, other organisations' admins may not,
// and the citizen login scopes belong to a platform API, so only an operator grants them.
func TestRegistryOIDCClientSettings(t *testing.T) {
	s := newTestServer(t)
	op := map[string]any(nil)

	v := must(t)(s.adminAs(op, "vendor", "create", "--name", "Beste App AS", "--orgnr", "921000006"))
	vendor := field(v, "admin_credential").(map[string]any)
	sys := field(must(t)(s.adminAs(vendor, "system", "create", "--vendor", field(v, "vendor", "vendor_id").(string), "--name", "Beste App")),
		"client_system", "client_system_id").(string)
	must(t)(s.adminAs(vendor, "system", "submit", sys))
	orgX := field(must(t)(s.adminAs(op, "org", "create", "--orgnr", "914994780", "--name", "God Lege AS")), "admin_credential").(map[string]any)
	orgY := field(must(t)(s.adminAs(op, "org", "create", "--orgnr", "874783242", "--name", "Fantastisk kommune")), "admin_credential").(map[string]any)

	// The organisation asks for the citizen login scopes as grants; they wait for an operator.
	x := must(t)(s.adminAs(orgX, "client", "create", "--name", "Beste App hos God Lege", "--orgnr", "914994780", "--client-system", sys,
		"--scope", scope.OpenID, "--scope", scope.OIDCName, "--scope", scope.OIDCPid))
	xID := x["client_id"].(string)
	got := must(t)(s.adminAs(orgX, "client", "get", xID))
	require.Empty(t, got["scopes"])
	require.Nil(t, got["oidc_settings"], "a client has no OpenID Connect settings until they are set")

	// CLI: only the flags given change; the rest start from the defaults.
	set := must(t)(s.adminAs(orgX, "client", "oidc-set", "--client", xID, "--redirect-uri", "https://app.example.no/cb",
		"--redirect-uri", "http://localhost:4010/uthopp/callback", "--initiate-login-uri", "https://app.example.no/start",
		"--refresh-allowed", "--allowed-scope", scope.OpenID, "--allowed-scope", scope.OIDCName))
	require.Equal(t, map[string]any{
		"client_type":        "CLIENT_TYPE_CONFIDENTIAL",
		"application_type":   "APPLICATION_TYPE_WEB",
		"redirect_uris":      []any{"https://app.example.no/cb", "http://localhost:4010/uthopp/callback"},
		"initiate_login_uri": "https://app.example.no/start",
		"refresh_allowed":    true,
		"refresh_window":     "1800s",
		"refresh_cap":        "43200s",
		"logout_mode":        "LOGOUT_MODE_INDEPENDENT",
		"allowed_scopes":     []any{scope.OpenID, scope.OIDCName},
	}, set["oidc_settings"])
	got = must(t)(s.adminAs(orgX, "client", "get", xID))
	require.Equal(t, set["oidc_settings"], got["oidc_settings"], "client get shows the settings")

	set = must(t)(s.adminAs(orgX, "client", "oidc-set", "--client", xID, "--client-type", "public", "--application-type", "native",
		"--redirect-uri", "", "--redirect-uri", "no.example.app:/cb", "--logout-mode", "linked", "--backchannel-logout-uri", "https://app.example.no/bcl"))
	o := set["oidc_settings"].(map[string]any)
	require.Equal(t, "CLIENT_TYPE_PUBLIC", o["client_type"])
	require.Equal(t, []any{"no.example.app:/cb"}, o["redirect_uris"])
	require.Equal(t, true, o["require_par"], "a public client always requires PAR")
	require.Equal(t, true, o["require_mtls"])
	require.Equal(t, "https://app.example.no/start", o["initiate_login_uri"], "fields not named are kept")

	for _, d := range []struct {
		cred    map[string]any
		args    []string
		wantErr string
	}{
		{orgX, []string{"client", "oidc-set", "--client", xID, "--application-type", "web"},
			"invalid_request: a public client must be a native app (application_type native)"},
		{orgX, []string{"client", "oidc-set", "--client", xID, "--require-par=false"}, "invalid_request: a public client must require PAR"},
		{orgX, []string{"client", "oidc-set", "--client", xID, "--redirect-uri", "https://app.example.no/cb#frag"},
			`invalid_request: redirect_uris: "https://app.example.no/cb#frag" has a fragment`},
		{orgX, []string{"client", "oidc-set", "--client", xID}, "invalid_request: update_mask names no field"},
		{orgY, []string{"client", "oidc-set", "--client", xID, "--redirect-uri", "https://evil.example.com/cb"},
			"permission_denied: you may not access this client"},
		{orgY, []string{"client", "get", xID}, "permission_denied: you may not access this client"},
		{vendor, []string{"client", "oidc-set", "--client", xID, "--refresh-allowed"}, "permission_denied: you may not access this client"},
	} {
		_, err := s.adminAs(d.cred, d.args...)
		require.EqualError(t, err, d.wantErr, "%v", d.args)
	}

	// REST: the same update, its mask taken from the fields in the body (lowerCamelCase JSON).
	path := "/registry/v1/clients/" + xID + "/oidcSettings"
	tokX, tokY := s.adminToken(orgX), s.adminToken(orgY)
	r := s.do(http.MethodPatch, path, "application/json", []byte(`{"redirectUris":["no.example.app:/cb","https://app.example.no/cb2"],"refreshCap":"86400s"}`), bearer(tokX))
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	var updated registryv1.UpdateClientOidcSettingsResponse
	require.NoError(t, protojson.Unmarshal(r.raw, &updated))
	rest := updated.GetClient().GetOidcSettings()
	require.Equal(t, []string{"no.example.app:/cb", "https://app.example.no/cb2"}, rest.GetRedirectUris())
	require.Equal(t, 24*time.Hour, rest.GetRefreshCap().AsDuration())
	require.Equal(t, registryv1.LogoutMode_LOGOUT_MODE_LINKED, rest.GetLogoutMode(), "fields not in the body are kept")
	r = s.do(http.MethodGet, "/registry/v1/clients/"+xID, "", nil, bearer(tokX))
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	var read registryv1.GetClientResponse
	require.NoError(t, protojson.Unmarshal(r.raw, &read))
	require.True(t, proto.Equal(rest, read.GetClient().GetOidcSettings()), "GET shows the settings")
	r = s.do(http.MethodPatch, path, "application/json", []byte(`{"redirectUris":["http://app.example.no/cb"]}`), bearer(tokX))
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.raw)
	require.Contains(t, string(r.raw), `redirect_uris: \"http://app.example.no/cb\" must use https, http on a loopback address or a private-use scheme`)
	r = s.do(http.MethodPatch, path, "application/json", []byte(`{"redirectUris":["https://evil.example.com/cb"]}`), bearer(tokY))
	require.Equal(t, http.StatusForbidden, r.status, "%s", r.raw)

	// The change is in the audit trail with its actor.
	audit := must(t)(s.adminAs(op, "audit", "list", "--type", "client", "--id", xID))
	last := audit["events"].([]any)[0].(map[string]any)
	require.Equal(t, "/hnsec.registry.v1.ClientRegistryService/UpdateClientOidcSettings", last["action"])
	require.Equal(t, orgX["client_id"], last["actor_client_id"])

	// The citizen login scopes are a platform API's: no API owner registers them, and only an operator
	// grants them.
	api := must(t)(s.adminAs(op, "api", "create", "--audience", "nhn:test.api", "--name", "Test-API", "--orgnr", "921000006",
		"--scope", "nhn:test.api/read"))
	owner := field(api, "admin_credential").(map[string]any)
	for _, d := range []struct {
		cred    map[string]any
		args    []string
		wantErr string
	}{
		{op, []string{"api", "create", "--audience", scope.OIDCAudience, "--name", "X", "--orgnr", "921000006", "--scope", scope.OpenID},
			"invalid_request: audience: " + scope.OIDCAudience + " is reserved to the platform"},
		{op, []string{"api", "create", "--audience", scope.OpenID, "--name", "X", "--orgnr", "921000006", "--scope", "openid/x"},
			"invalid_request: audience: openid is reserved to the platform"},
		{owner, []string{"api", "scope-add", "--api", field(api, "api_resource", "api_id").(string), scope.OIDCPid},
			"invalid_request: scopes: oidcfodselsnummer is not a scope of audience nhn:test.api (a scope is <audience>/<name>)"},
		{orgX, []string{"grant", "approve", "--client", xID, "--scope", scope.OpenID}, "permission_denied: you may not access this scope"},
		{owner, []string{"grant", "approve", "--client", xID, "--scope", scope.OpenID}, "permission_denied: you may not access this scope"},
	} {
		_, err := s.adminAs(d.cred, d.args...)
		require.EqualError(t, err, d.wantErr, "%v", d.args)
	}
	platform := map[string][]any{}
	for _, a := range must(t)(s.adminAs(op, "api", "list"))["api_resources"].([]any) {
		a := a.(map[string]any)
		if a["platform"] == true {
			platform[a["audience"].(string)] = a["scopes"].([]any)
		}
	}
	require.ElementsMatch(t, []any{scope.OpenID, scope.OfflineAccess, scope.OIDCName, scope.OIDCBirthdate, scope.OIDCPid}, platform[scope.OIDCAudience])
	for _, sc := range []string{scope.OpenID, scope.OIDCName} {
		g := must(t)(s.adminAs(op, "grant", "approve", "--client", xID, "--scope", sc))
		require.Equal(t, "GRANT_STATUS_APPROVED", field(g, "grant", "status"))
	}
	got = must(t)(s.adminAs(op, "client", "get", xID))
	require.ElementsMatch(t, []any{scope.OpenID, scope.OIDCName}, got["scopes"])
	require.Equal(t, "CLIENT_TYPE_PUBLIC", field(got, "oidc_settings", "client_type"))
}
