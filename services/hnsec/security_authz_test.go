package main

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/scope"
)

// The authorization model, tried as an attacker would (issue 14): each test is an attack on a production
// (non-dev) server that must be refused. Scopes belong to the API that owns their audience and platform
// scopes to operators; tenants are typed, so a shared organisation number gives no rights over another
// kind of tenant's credentials; privileged RPCs in every service ask the registry who the caller is, so a
// blocked or deleted admin loses its power at once, old tokens included.

// adminToken gets an access token for an admin credential as printed by a create command.
func (s *testServer) adminToken(cred map[string]any) string {
	s.t.Helper()
	r := s.tokenForm(cred["client_id"].(string), cred["client_secret"].(string))
	require.Equal(s.t, http.StatusOK, r.status, "%s", r.raw)
	return r.body["access_token"].(string)
}

// bearer is the header of a call with token.
func bearer(token string) http.Header { return http.Header{"Authorization": {"Bearer " + token}} }

func TestSecurityScopesBelongToTheirAPI(t *testing.T) {
	s := newProductionServer(t)
	op := map[string]any(nil)
	api := must(t)(s.adminAs(op, "api", "create", "--audience", "nhn:test.api", "--name", "Test-API", "--orgnr", "921000006",
		"--scope", "nhn:test.api/read"))
	owner, apiID := field(api, "admin_credential").(map[string]any), field(api, "api_resource", "api_id").(string)
	other := must(t)(s.adminAs(op, "api", "create", "--audience", "nhn:other.api", "--name", "Annet API", "--orgnr", "921000006",
		"--scope", "nhn:other.api/x"))

	// The platform APIs exist without dev mode, hold every scope hnsec checks, and are marked.
	platform := map[string]string{}
	for _, a := range must(t)(s.adminAs(op, "api", "list"))["api_resources"].([]any) {
		a := a.(map[string]any)
		if a["platform"] == true {
			platform[a["audience"].(string)] = a["api_id"].(string)
			for _, sc := range a["scopes"].([]any) {
				require.True(t, scope.IsPlatform(sc.(string)), "%v", sc)
			}
		}
	}
	require.Len(t, platform, len(scope.PlatformAPIs))
	pvkAPI := platform[scope.Audience(scope.PVKWrite)]
	require.NotEmpty(t, pvkAPI)

	notOwn := func(sc, aud string) string {
		return "invalid_request: scopes: " + sc + " is not a scope of audience " + aud + " (a scope is <audience>/<name>)"
	}
	for _, d := range []struct {
		name    string
		cred    map[string]any
		args    []string
		wantErr string
	}{
		{"an API owner claims a PVK scope", owner, []string{"api", "scope-add", "--api", apiID, scope.PVKWrite}, notOwn(scope.PVKWrite, "nhn:test.api")},
		{"an API owner claims introspection", owner, []string{"api", "scope-add", "--api", apiID, scope.Introspect}, notOwn(scope.Introspect, "nhn:test.api")},
		{"an API owner claims the admin scope", owner, []string{"api", "scope-add", "--api", apiID, scope.RegistryAdmin}, notOwn(scope.RegistryAdmin, "nhn:test.api")},
		{"an API owner claims another API's audience", owner, []string{"api", "scope-add", "--api", apiID, "nhn:other.api/y"}, notOwn("nhn:other.api/y", "nhn:test.api")},
		{"an API owner registers a bare audience", owner, []string{"api", "scope-add", "--api", apiID, "nhn:test.api/"}, notOwn("nhn:test.api/", "nhn:test.api")},
		{"an API owner adds to a platform API", owner, []string{"api", "scope-add", "--api", pvkAPI, "nhn:helsenorge.eksternapi/mer"},
			"permission_denied: you may not access this API"},
		{"an API owner adds to another API", owner, []string{"api", "scope-add", "--api", field(other, "api_resource", "api_id").(string), "nhn:other.api/z"},
			"permission_denied: you may not access this API"},
		{"a platform audience", op, []string{"api", "create", "--audience", scope.Audience(scope.PVKRead), "--name", "X", "--orgnr", "921000006",
			"--scope", scope.PVKRead}, "invalid_request: audience: nhn:helsenorge.eksternapi is reserved to the platform"},
		{"hnsec's own names", op, []string{"api", "create", "--audience", "hnsec:x", "--name", "X", "--orgnr", "921000006", "--scope", "hnsec:x/y"},
			"invalid_request: audience: hnsec:x is reserved to the platform"},
		{"an audience with a slash", op, []string{"api", "create", "--audience", "nhn:helsenorge.eksternapi/x", "--name", "X", "--orgnr", "921000006",
			"--scope", "nhn:helsenorge.eksternapi/x/y"}, "invalid_request: audience: nhn:helsenorge.eksternapi/x is reserved to the platform"},
		{"a new API with a platform scope", op, []string{"api", "create", "--audience", "nhn:third.api", "--name", "X", "--orgnr", "921000006",
			"--scope", scope.PVKWrite}, notOwn(scope.PVKWrite, "nhn:third.api")},
		{"an audience taken", op, []string{"api", "create", "--audience", "nhn:test.api", "--name", "X", "--orgnr", "921000006",
			"--scope", "nhn:test.api/write"}, "already_exists: API or scope already exists"},
	} {
		_, err := s.adminAs(d.cred, d.args...)
		require.EqualError(t, err, d.wantErr, d.name)
	}
	must(t)(s.adminAs(owner, "api", "scope-add", "--api", apiID, "nhn:test.api/write"))

	// The chain of issue 14: an organisation asks for PVK write; the API owner cannot grant it, only an
	// operator can.
	org := field(must(t)(s.adminAs(op, "org", "create", "--orgnr", "914994780", "--name", "God Lege AS")), "admin_credential").(map[string]any)
	c := must(t)(s.adminAs(op, "client", "create", "--name", "Journal", "--orgnr", "914994780", "--scope", "nhn:test.api/read"))
	id := c["client_id"].(string)
	must(t)(s.adminAs(org, "grant", "request", "--client", id, "--scope", scope.PVKWrite))
	for _, args := range [][]string{
		{"grant", "approve", "--client", id, "--scope", scope.PVKWrite},
		{"grant", "list", "--api", pvkAPI},
	} {
		_, err := s.adminAs(owner, args...)
		require.ErrorContains(t, err, "permission_denied: you may not access this", "%v", args)
	}
	r := s.do(http.MethodPost, "/sts/Token", form, []byte("grant_type=client_credentials&scope="+scope.PVKWrite+"&client_id="+id+
		"&client_secret="+c["client_secret"].(string)), nil)
	require.Equal(t, http.StatusBadRequest, r.status, "%s", r.raw)
	require.Equal(t, "invalid_scope", r.body["error"])
	must(t)(s.adminAs(op, "grant", "approve", "--client", id, "--scope", scope.PVKWrite))
}

func TestSecurityTenantsAreTyped(t *testing.T) {
	s := newProductionServer(t)
	op := map[string]any(nil)
	const shared = "914994780" // one organisation number, three kinds of tenant
	org := field(must(t)(s.adminAs(op, "org", "create", "--orgnr", shared, "--name", "God Lege AS")), "admin_credential").(map[string]any)
	vendor := field(must(t)(s.adminAs(op, "vendor", "create", "--name", "God Lege Programvare", "--orgnr", shared)), "admin_credential").(map[string]any)
	owner := field(must(t)(s.adminAs(op, "api", "create", "--audience", "nhn:test.api", "--name", "Test-API", "--orgnr", shared,
		"--scope", "nhn:test.api/read")), "admin_credential").(map[string]any)

	for _, d := range []struct {
		name   string
		cred   map[string]any
		target string
	}{
		{"an organisation takes the vendor's credential", org, vendor["client_id"].(string)},
		{"an organisation takes the API owner's credential", org, owner["client_id"].(string)},
		{"a vendor takes the organisation's credential", vendor, org["client_id"].(string)},
		{"an API owner takes the organisation's credential", owner, org["client_id"].(string)},
		{"an organisation takes the operator's credential", org, s.operatorCredentials().ClientID},
	} {
		for _, args := range [][]string{
			{"secret", "add", "--client", d.target},
			{"secret", "list", "--client", d.target},
			{"client", "get", d.target},
			{"client", "block", d.target},
			{"client", "delete", d.target},
			{"grant", "request", "--client", d.target, "--scope", "nhn:test.api/read"},
		} {
			_, err := s.adminAs(d.cred, args...)
			require.EqualError(t, err, "permission_denied: you may not access this client", "%s: %v", d.name, args)
		}
	}
	// The organisation's list leaves the other kinds' credentials out; its own admins manage its own.
	listed := must(t)(s.adminAs(org, "client", "list"))["clients"].([]any)
	require.Len(t, listed, 1)
	require.Equal(t, org["client_id"], listed[0].(map[string]any)["client_id"])
	must(t)(s.adminAs(org, "secret", "list", "--client", org["client_id"].(string)))
	// No admin locks its tenant out: its own credential is not blocked or deleted by itself.
	for cred, wantErr := range map[string]string{"block": "failed_precondition: a credential cannot block itself",
		"delete": "failed_precondition: a credential cannot delete itself"} {
		_, err := s.adminAs(org, "client", cred, org["client_id"].(string))
		require.EqualError(t, err, wantErr)
		_, err = s.adminAs(op, "client", cred, s.operatorCredentials().ClientID)
		require.EqualError(t, err, wantErr)
	}
	must(t)(s.adminAs(vendor, "secret", "add", "--client", vendor["client_id"].(string)))
}

func TestSecurityPrivilegedCallsAskTheRegistry(t *testing.T) {
	s := newProductionServer(t)
	op := map[string]any(nil)
	orgX := field(must(t)(s.adminAs(op, "org", "create", "--orgnr", "914994780", "--name", "God Lege AS")), "admin_credential").(map[string]any)
	orgY := field(must(t)(s.adminAs(op, "org", "create", "--orgnr", "874783242", "--name", "Fantastisk kommune")), "admin_credential").(map[string]any)
	vendor := field(must(t)(s.adminAs(op, "vendor", "create", "--name", "Beste Journal AS", "--orgnr", "921000006")), "admin_credential").(map[string]any)
	x := must(t)(s.adminAs(op, "client", "create", "--name", "Journal", "--orgnr", "914994780", "--scope", "nhn:test.api/read"))
	xID := x["client_id"].(string)

	// Revoke-all: a stranger may not, the client's own organisation may (audited), and so may operators.
	revokeAll := func(cred map[string]any, id string) error {
		_, err := s.adminAs(cred, "token", "revoke-all", "--client", id)
		return err
	}
	require.EqualError(t, revokeAll(orgY, xID), "permission_denied: you may not access this client")
	require.EqualError(t, revokeAll(vendor, xID), "permission_denied: you may not access this client")
	require.NoError(t, revokeAll(orgX, xID))
	require.NoError(t, revokeAll(op, xID))
	trail := must(t)(s.adminAs(op, "audit", "list", "--type", "client", "--id", xID))["events"].([]any)
	actions := map[string]int{}
	for _, e := range trail {
		actions[e.(map[string]any)["action"].(string)+" "+e.(map[string]any)["actor_role"].(string)]++
	}
	require.Equal(t, 1, actions["/hnsec.sts.v1.TokenService/RevokeAllTokens ROLE_ORGANISATION"], "%v", actions)
	require.Equal(t, 1, actions["/hnsec.sts.v1.TokenService/RevokeAllTokens ROLE_OPERATOR"], "%v", actions)

	// PVK definitions: operators only, although every admin credential carries the admin scope.
	def := []string{"pvk", "definition-create", "--guid", "0f7a1c9e-1b2d-4c3e-8f4a-5b6c7d8e9f01", "--navn", "Reservasjon", "--part", "test",
		"--type", "reservasjon"}
	for _, cred := range []map[string]any{orgX, vendor} {
		_, err := s.adminAs(cred, def...)
		require.EqualError(t, err, "permission_denied: only operators may do this")
	}
	must(t)(s.adminAs(op, def...))

	// A blocked admin's token, issued before the block, opens nothing: not the registry, not the STS's
	// revoke-all, not PVK's definitions. The same after deletion.
	calls := []struct{ method, path, body string }{
		{http.MethodGet, "/registry/v1/clients", ""},
		{http.MethodPost, "/registry/v1/clients/" + xID + "/secrets", "{}"},
		{http.MethodPost, "/sts/v1/clients/" + xID + ":revokeAllTokens", "{}"},
		{http.MethodPost, "/pvk/v1/definitions", `{"definisjonGuid":"0f7a1c9e-1b2d-4c3e-8f4a-5b6c7d8e9f02","definisjonNavn":"X","partKode":"p","typePi":"samtykke"}`},
	}
	tok := s.adminToken(orgX)
	for _, c := range calls[:3] {
		r := s.do(c.method, c.path, "application/json", []byte(c.body), bearer(tok))
		require.Less(t, r.status, 300, "before the block %s %s: %s", c.method, c.path, r.raw)
	}
	must(t)(s.adminAs(op, "client", "block", orgX["client_id"].(string)))
	for _, c := range calls {
		r := s.do(c.method, c.path, "application/json", []byte(c.body), bearer(tok))
		require.Equal(t, http.StatusUnauthorized, r.status, "blocked %s %s: %s", c.method, c.path, r.raw)
	}
	tok = s.adminToken(orgY)
	must(t)(s.adminAs(op, "client", "delete", orgY["client_id"].(string)))
	for _, c := range calls {
		r := s.do(c.method, c.path, "application/json", []byte(c.body), bearer(tok))
		require.Equal(t, http.StatusUnauthorized, r.status, "deleted %s %s: %s", c.method, c.path, r.raw)
	}
}

func TestSecurityNamesRefuseControlCharacters(t *testing.T) {
	s := newProductionServer(t)
	for _, d := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"vendor", "create", "--name", "Beste\u202eSA lanruoJ", "--orgnr", "921000006"}, "invalid_request: name must not contain control characters"},
		{[]string{"org", "create", "--orgnr", "914994780", "--name", "God Lege\nAS"}, "invalid_request: name must not contain control characters"},
		{[]string{"client", "create", "--name", "Journal\x1b[2J", "--orgnr", "914994780", "--scope", "x/y"}, "invalid_request: name must not contain control characters"},
		{[]string{"pvk", "definition-create", "--guid", "0f7a1c9e-1b2d-4c3e-8f4a-5b6c7d8e9f03", "--navn", "Reserva\u200bsjon", "--part", "test",
			"--type", "reservasjon"}, "invalid_request: definisjonNavn must not contain control characters"},
	} {
		_, err := s.adminAs(nil, d.args...)
		require.EqualError(t, err, d.wantErr, "%q", d.args)
	}
	v := must(t)(s.adminAs(nil, "vendor", "create", "--name", "Beste Journal AS", "--orgnr", "921000006"))
	_, err := s.adminAs(nil, "system", "create", "--vendor", field(v, "vendor", "vendor_id").(string), "--name", "Journal",
		"--description", "Linje én\nLinje to\x07")
	require.EqualError(t, err, "invalid_request: description must not contain control characters other than line breaks and tabs")
	must(t)(s.adminAs(nil, "system", "create", "--vendor", field(v, "vendor", "vendor_id").(string), "--name", "Journal",
		"--description", "Linje én\r\nLinje to\tmed tab"))
}
