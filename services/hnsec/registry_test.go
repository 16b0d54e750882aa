package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"
)

// adminAs runs `hnsec admin` with the admin credential cred (as printed by a create command) and decodes
// its JSON output.
func (s *testServer) adminAs(cred map[string]any, args ...string) (map[string]any, error) {
	s.t.Helper()
	all := append([]string{args[0], args[1], "-o", "json"}, args[2:]...)
	if cred != nil {
		b, err := json.Marshal(cred)
		require.NoError(s.t, err)
		path := filepath.Join(s.t.TempDir(), "cred.json")
		require.NoError(s.t, os.WriteFile(path, b, 0o600))
		all = append([]string{args[0], args[1], "-o", "json", "--credentials-file", path}, args[2:]...)
	}
	out, err := s.admin(all...)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	require.NoError(s.t, json.Unmarshal([]byte(out), &m), "%s", out)
	return m, nil
}

// must returns a function that fails the test on err and returns m: must(t)(s.adminAs(...)).
func must(t *testing.T) func(m map[string]any, err error) map[string]any {
	return func(m map[string]any, err error) map[string]any {
		t.Helper()
		require.NoError(t, err)
		return m
	}
}

func field(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		v = v.(map[string]any)[p]
	}
	return v
}

func TestVendorsSystemsAndOrganisationsStayInTheirTenancy(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.Registry.RequireApproval = true })
	op := map[string]any(nil) // the bootstrap operator (operator.json)

	va := must(t)(s.adminAs(op, "vendor", "create", "--name", "Beste Journal AS", "--orgnr", "921000006"))
	vb := must(t)(s.adminAs(op, "vendor", "create", "--name", "Annen Leverandør AS", "--orgnr", "994598759"))
	vendorA, vendorB := field(va, "vendor", "vendor_id").(string), field(vb, "vendor", "vendor_id").(string)
	credA, credB := field(va, "admin_credential").(map[string]any), field(vb, "admin_credential").(map[string]any)
	require.Equal(t, "ROLE_VENDOR", credA["role"])
	require.Equal(t, vendorA, credA["tenant"])

	sa := must(t)(s.adminAs(credA, "system", "create", "--vendor", vendorA, "--name", "Beste Journal", "--description", "EPJ"))
	sb := must(t)(s.adminAs(credB, "system", "create", "--vendor", vendorB, "--name", "Annet System"))
	systemA, systemB := field(sa, "client_system", "client_system_id").(string), field(sb, "client_system", "client_system_id").(string)
	require.Equal(t, "CLIENT_SYSTEM_STATUS_DRAFT", field(sa, "client_system", "status"))

	// A vendor never sees or touches another vendor's systems, nor learns whether an id exists.
	denied := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"system", "get", systemB}, "permission_denied: you may not access this client system"},
		{[]string{"system", "get", "6f1c2d3e-0000-4000-8000-00000000dead"}, "permission_denied: you may not access this client system"},
		{[]string{"system", "submit", systemB}, "permission_denied: you may not access this client system"},
		{[]string{"system", "list", "--vendor", vendorB}, "permission_denied: you may not access this vendor"},
		{[]string{"system", "create", "--vendor", vendorB, "--name", "Kapret"}, "permission_denied: you may not access this vendor"},
		{[]string{"vendor", "get", vendorB}, "permission_denied: you may not access this vendor"},
		{[]string{"vendor", "create", "--name", "X", "--orgnr", "971000007"}, "permission_denied: only operators may do this"},
		{[]string{"system", "approve", systemA}, "permission_denied: only operators may do this"},
		{[]string{"org", "list"}, "permission_denied: you may not access this organisation list"},
		{[]string{"org", "create", "--orgnr", "971000007", "--name", "X"}, "permission_denied: only operators may do this"},
	}
	for _, d := range denied {
		_, err := s.adminAs(credA, d.args...)
		require.EqualError(t, err, d.wantErr, "%v", d.args)
	}
	list := must(t)(s.adminAs(credA, "vendor", "list"))
	require.Len(t, list["vendors"], 1, "a vendor lists only itself")
	list = must(t)(s.adminAs(credA, "system", "list"))
	require.Len(t, list["client_systems"], 1)

	// Approval: submitted systems wait for an operator; rejected ones may be submitted again.
	sa = must(t)(s.adminAs(credA, "system", "submit", systemA))
	require.Equal(t, "CLIENT_SYSTEM_STATUS_PENDING_APPROVAL", field(sa, "client_system", "status"))
	_, err := s.adminAs(credA, "system", "submit", systemA)
	require.EqualError(t, err, "failed_precondition: the client system is pending_approval")
	sa = must(t)(s.adminAs(op, "system", "approve", systemA))
	require.Equal(t, "CLIENT_SYSTEM_STATUS_APPROVED", field(sa, "client_system", "status"))
	must(t)(s.adminAs(credB, "system", "submit", systemB))
	sb = must(t)(s.adminAs(op, "system", "reject", "--reason", "mangler dokumentasjon", systemB))
	require.Equal(t, "CLIENT_SYSTEM_STATUS_REJECTED", field(sb, "client_system", "status"))
	sb = must(t)(s.adminAs(credB, "system", "submit", systemB))
	require.Equal(t, "CLIENT_SYSTEM_STATUS_PENDING_APPROVAL", field(sb, "client_system", "status"))

	// Organisations and their client configurations.
	ox := must(t)(s.adminAs(op, "org", "create", "--orgnr", "914994780", "--name", "God Lege AS"))
	oy := must(t)(s.adminAs(op, "org", "create", "--orgnr", "874783242", "--name", "Fantastisk kommune"))
	credX, credY := field(ox, "admin_credential").(map[string]any), field(oy, "admin_credential").(map[string]any)
	child := must(t)(s.adminAs(op, "org", "create", "--orgnr", "983971636", "--name", "Fantastisk legevakt", "--parent", "874783242"))
	require.Equal(t, "874783242", field(child, "organisation", "parent_organisation_number"))

	cx := must(t)(s.adminAs(credX, "client", "create", "--name", "Beste Journal hos God Lege", "--orgnr", "914994780",
		"--client-system", systemA, "--scope", "nhn:helsenorge.eksternapi/personverninnstilling_read"))
	require.NotEmpty(t, cx["client_secret"])
	cy := must(t)(s.adminAs(credY, "client", "create", "--name", "Beste Journal i kommunen", "--orgnr", "874783242",
		"--client-system", systemA, "--scope", "nhn:helsenorge.eksternapi/personverninnstilling_read"))
	for _, d := range []struct {
		cred    map[string]any
		args    []string
		wantErr string
	}{
		{credX, []string{"client", "create", "--name", "N", "--orgnr", "874783242", "--client-system", systemA, "--scope", "nhn:helsenorge.eksternapi/personverninnstilling_read"}, "permission_denied: you may not access this organisation"},
		{credX, []string{"client", "create", "--name", "N", "--orgnr", "914994780", "--client-system", systemB, "--scope", "nhn:helsenorge.eksternapi/personverninnstilling_read"},
			"failed_precondition: client system " + systemB + " is pending_approval, not approved"},
		{credX, []string{"client", "create", "--name", "N", "--orgnr", "914994780", "--scope", "x/y"}, "invalid_request: client_system_id is required"},
		{credX, []string{"client", "get", cy["client_id"].(string)}, "permission_denied: you may not access this client"},
		{credX, []string{"client", "block", cy["client_id"].(string)}, "permission_denied: you may not access this client"},
		{credX, []string{"client", "get", "6f1c2d3e-0000-4000-8000-00000000dead"}, "permission_denied: you may not access this client"},
		{credX, []string{"org", "get", "874783242"}, "permission_denied: you may not access this organisation"},
		{credX, []string{"vendor", "list"}, "permission_denied: you may not access this vendor list"},
		{credA, []string{"client", "get", cx["client_id"].(string)}, "permission_denied: you may not access this client"},
		{op, []string{"client", "get", "6f1c2d3e-0000-4000-8000-00000000dead"}, "not_found: client not found"},
		{op, []string{"system", "get", "6f1c2d3e-0000-4000-8000-00000000dead"}, "not_found: client system not found"},
		{op, []string{"vendor", "create", "--name", "Beste Journal AS", "--orgnr", "921000006"}, "already_exists: vendor already exists"},
		{op, []string{"org", "create", "--orgnr", "914994780", "--name", "Igjen"}, "already_exists: organisation already exists"},
		{op, []string{"org", "create", "--orgnr", "914994781", "--name", "Feil"}, "invalid_request: organisation_number has a wrong check digit"},
		{op, []string{"org", "create", "--orgnr", "889640782", "--name", "Barn", "--parent", "923456783"}, "not_found: parent organisation not found"},
		{op, []string{"org", "create", "--orgnr", "889640782", "--name", "Barn", "--parent", "889640782"}, "invalid_request: an organisation cannot be its own parent"},
		{op, []string{"org", "create", "--orgnr", "889640782", "--name", "Barn", "--parent", "923456784"}, "invalid_request: parent_organisation_number has a wrong check digit"},
		{op, []string{"system", "create", "--vendor", "6f1c2d3e-0000-4000-8000-00000000dead", "--name", "S"}, "not_found: vendor not found"},
		{op, []string{"vendor", "list", "--page-size", "101"}, "invalid_request: page_size must be between 0 and 100"},
		{credA, []string{"system", "create", "--vendor", vendorA, "--name", "Beste Journal"}, "already_exists: client system already exists"},
		{op, []string{"vendor", "create", "--name", strings.Repeat("x", 201), "--orgnr", "971000007"}, "invalid_request: name must be 1 to 200 characters"},
		{credA, []string{"system", "create", "--vendor", vendorA, "--name", "S", "--description", strings.Repeat("d", 2001)},
			"invalid_request: description must be at most 2000 characters"},
		{op, []string{"vendor", "list", "--page-token", "!!"}, "invalid_request: page_token is not one this API returned"},
	} {
		_, err := s.adminAs(d.cred, d.args...)
		require.EqualError(t, err, d.wantErr, "%v", d.args)
	}
	got := must(t)(s.adminAs(credX, "client", "get", cx["client_id"].(string)))
	require.Equal(t, systemA, got["client_system_id"])
	r := s.tokenForm(cx["client_id"].(string), cx["client_secret"].(string))
	require.Equal(t, 400, r.status, "%s", r.raw)
	require.Equal(t, "no scope is granted to this client yet", r.body["error_description"], "its only grant is pending")

	// Pagination: pages of two vendors, then the rest.
	page1 := must(t)(s.adminAs(op, "vendor", "list", "--page-size", "2"))
	require.Len(t, page1["vendors"], 2)
	require.NotEmpty(t, page1["next_page_token"])
	page2 := must(t)(s.adminAs(op, "vendor", "list", "--page-size", "2", "--page-token", page1["next_page_token"].(string)))
	require.Len(t, page2["vendors"], 1, "the demo vendor and two more")
	require.Empty(t, page2["next_page_token"])
}

// The life cycle as the roles would drive it: a vendor registers a system, the operator approves it, two
// organisations create configurations, the API owner grants one and rejects the other, and a grant revoked
// after issuance disappears from introspection.
func TestGrantLifeCycle(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.Registry.RequireApproval = true })
	op := map[string]any(nil)
	const read, write = "nhn:test.api/read", "nhn:test.api/write"

	api := must(t)(s.adminAs(op, "api", "create", "--audience", "nhn:test.api", "--name", "Test-API", "--orgnr", "994598759",
		"--scope", read, "--scope", write))
	owner := field(api, "admin_credential").(map[string]any)
	require.Equal(t, "ROLE_API_OWNER", owner["role"])
	other := field(must(t)(s.adminAs(op, "api", "create", "--audience", "nhn:other.api", "--name", "Annet API", "--orgnr", "994598759",
		"--scope", "nhn:other.api/x")), "admin_credential").(map[string]any)

	v := must(t)(s.adminAs(op, "vendor", "create", "--name", "Beste Journal AS", "--orgnr", "921000006"))
	vendor := field(v, "admin_credential").(map[string]any)
	sys := field(must(t)(s.adminAs(vendor, "system", "create", "--vendor", field(v, "vendor", "vendor_id").(string), "--name", "Beste Journal")),
		"client_system", "client_system_id").(string)
	must(t)(s.adminAs(vendor, "system", "submit", sys))
	must(t)(s.adminAs(op, "system", "approve", sys))

	orgX := field(must(t)(s.adminAs(op, "org", "create", "--orgnr", "914994780", "--name", "God Lege AS")), "admin_credential").(map[string]any)
	orgY := field(must(t)(s.adminAs(op, "org", "create", "--orgnr", "874783242", "--name", "Fantastisk kommune")), "admin_credential").(map[string]any)
	x := must(t)(s.adminAs(orgX, "client", "create", "--name", "Beste Journal, God Lege", "--orgnr", "914994780", "--client-system", sys,
		"--scope", read, "--scope", write))
	y := must(t)(s.adminAs(orgY, "client", "create", "--name", "Beste Journal, kommunen", "--orgnr", "874783242", "--client-system", sys,
		"--scope", read))
	xID, yID := x["client_id"].(string), y["client_id"].(string)

	// Pending grants give no token yet; an organisation cannot approve its own, nor another API's owner.
	require.Equal(t, "no scope is granted to this client yet", s.tokenForm(xID, x["client_secret"].(string)).body["error_description"])
	for _, d := range []struct {
		cred    map[string]any
		args    []string
		wantErr string
	}{
		{orgX, []string{"grant", "approve", "--client", xID, "--scope", read}, "permission_denied: you may not access this scope"},
		{other, []string{"grant", "approve", "--client", xID, "--scope", read}, "permission_denied: you may not access this scope"},
		{orgX, []string{"grant", "request", "--client", yID, "--scope", read}, "permission_denied: you may not access this client"},
		{orgX, []string{"grant", "request", "--client", xID, "--scope", "nhn:unknown/x"}, "invalid_request: scope nhn:unknown/x is not registered by any API"},
		{orgX, []string{"grant", "request", "--client", xID, "--scope", read}, "already_exists: the grant is already pending"},
		{owner, []string{"grant", "revoke", "--client", xID, "--scope", read}, "failed_precondition: the grant is pending"},
		{owner, []string{"grant", "list", "--client", xID}, "permission_denied: you may not access this client"},
		{other, []string{"grant", "list", "--api", "6f1c2d3e-0000-4000-8000-000000000003"}, "permission_denied: you may not access this API"},
	} {
		_, err := s.adminAs(d.cred, d.args...)
		require.EqualError(t, err, d.wantErr, "%v", d.args)
	}

	must(t)(s.adminAs(owner, "grant", "approve", "--client", xID, "--scope", read))
	must(t)(s.adminAs(owner, "grant", "approve", "--client", xID, "--scope", write))
	g := must(t)(s.adminAs(owner, "grant", "reject", "--client", yID, "--scope", read))
	require.Equal(t, "GRANT_STATUS_REJECTED", field(g, "grant", "status"))
	listed := must(t)(s.adminAs(owner, "grant", "list", "--api", field(api, "api_resource", "api_id").(string)))
	require.Len(t, listed["grants"], 3)

	// One organisation gets the scope, the other, on the same system, does not.
	require.EventuallyWithT(t, func(c *assertCollect) {
		r := s.do("POST", "/sts/Token", form, []byte("grant_type=client_credentials&scope="+read+"&client_id="+xID+"&client_secret="+
			x["client_secret"].(string)), nil)
		require.Equal(c, 200, r.status, "%s", r.raw)
	}, time.Second, 20*time.Millisecond)
	r := s.do("POST", "/sts/Token", form, []byte("grant_type=client_credentials&scope="+read+"&client_id="+yID+"&client_secret="+
		y["client_secret"].(string)), nil)
	require.Equal(t, "invalid_scope", r.body["error"])
	require.Equal(t, "no scope is granted to this client yet", r.body["error_description"])

	// A grant revoked after issuance leaves the token's answer; with no scope left the token is inactive.
	tok := s.tokenForm(xID, x["client_secret"].(string)).body["access_token"].(string)
	require.Equal(t, read+" "+write, s.introspect(tok).body["scope"])
	must(t)(s.adminAs(owner, "grant", "revoke", "--client", xID, "--scope", write))
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, read, s.introspect(tok).body["scope"])
	}, time.Second, 10*time.Millisecond)
	must(t)(s.adminAs(owner, "grant", "revoke", "--client", xID, "--scope", read))
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, `{"active":false}`, string(s.introspect(tok).raw))
	}, time.Second, 10*time.Millisecond)
	// And new tokens cannot have it.
	require.Equal(t, "invalid_scope", s.tokenForm(xID, x["client_secret"].(string)).body["error"])

	// The audit trail shows it all: who, what, when, before and after, and never a secret.
	trail := must(t)(s.adminAs(op, "audit", "list", "--type", "grant", "--id", xID+" "+read))
	events := trail["events"].([]any)
	require.Len(t, events, 3, "requested, approved, revoked")
	newest := events[0].(map[string]any)
	require.Equal(t, "/hnsec.registry.v1.ClientRegistryService/RevokeGrant", newest["action"])
	require.Equal(t, owner["client_id"], newest["actor_client_id"])
	require.Equal(t, "ROLE_API_OWNER", newest["actor_role"])
	require.Contains(t, newest["before"], `"Status":2`)
	require.Contains(t, newest["after"], `"Status":4`)
	require.NotEmpty(t, newest["korrelasjons_id"])
	require.Equal(t, "/hnsec.registry.v1.ClientRegistryService/CreateClient", events[2].(map[string]any)["action"])
	require.Equal(t, orgX["client_id"], events[2].(map[string]any)["actor_client_id"])
	all := must(t)(s.adminAs(op, "audit", "list", "--page-size", "30"))
	require.Len(t, all["events"], 30)
	page2 := must(t)(s.adminAs(op, "audit", "list", "--page-size", "100", "--page-token", all["next_page_token"].(string)))
	require.NotEmpty(t, page2["events"])
	require.Empty(t, page2["next_page_token"])
	dump := s.mustJSON(all) + s.mustJSON(page2)
	for _, secret := range []string{x["client_secret"].(string), y["client_secret"].(string), owner["client_secret"].(string)} {
		require.NotContains(t, dump, secret)
	}
	require.NotContains(t, dump, "Hash")
	for _, kind := range []string{`"object_type":"vendor"`, `"object_type":"client_system"`, `"object_type":"organisation"`,
		`"object_type":"client"`, `"object_type":"client_secret"`, `"object_type":"api_resource"`, `"object_type":"grant"`} {
		require.Contains(t, dump, kind)
	}
	_, err := s.adminAs(orgX, "audit", "list")
	require.EqualError(t, err, "permission_denied: only operators may do this")
}

// A secret rotates with overlap: old and new both work until the old one's grace ends.
func TestSecretRotationWithOverlap(t *testing.T) {
	s := newTestServer(t)
	op := map[string]any(nil)
	id, oldSecret := s.dev.ClientID, s.dev.ClientSecret
	listed := must(t)(s.adminAs(op, "secret", "list", "--client", id))
	require.Len(t, listed["secrets"], 1)
	oldID := listed["secrets"].([]any)[0].(map[string]any)["secret_id"].(string)
	require.NotContains(t, s.mustJSON(listed), oldSecret)
	require.NotContains(t, s.mustJSON(listed), "hash")

	added := must(t)(s.adminAs(op, "secret", "add", "--client", id))
	newSecret := added["client_secret"].(string)
	require.Equal(t, 200, s.tokenForm(id, oldSecret).status)
	require.Equal(t, 200, s.tokenForm(id, newSecret).status)

	revoked := must(t)(s.adminAs(op, "secret", "revoke", "--client", id, "--grace", "2s", oldID))
	require.NotEmpty(t, field(revoked, "secret", "expire_time"))
	require.Equal(t, 200, s.tokenForm(id, oldSecret).status, "the old secret works during the grace period")
	require.EventuallyWithT(t, func(c *assertCollect) {
		r := s.tokenForm(id, oldSecret)
		require.Equal(c, 401, r.status, "an expired secret is invalid_client")
		require.Equal(c, "invalid_client", r.body["error"])
	}, 4*time.Second, 100*time.Millisecond)
	require.Equal(t, 200, s.tokenForm(id, newSecret).status)

	newID := ""
	for _, sec := range must(t)(s.adminAs(op, "secret", "list", "--client", id))["secrets"].([]any) {
		if m := sec.(map[string]any); m["expire_time"] == nil {
			newID = m["secret_id"].(string)
		}
	}
	for _, d := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"secret", "revoke", "--client", id, newID}, "failed_precondition: the client would have no working secret left; add one first, or block the client"},
		{[]string{"secret", "revoke", "--client", id, oldID}, "failed_precondition: the secret has already expired"},
		{[]string{"secret", "revoke", "--client", id, "--grace", "25h", newID}, "invalid_request: grace_seconds must be between 0 and 86400"},
		{[]string{"secret", "revoke", "--client", id, "6f1c2d3e-0000-4000-8000-00000000dead"}, "not_found: secret not found"},
		{[]string{"secret", "add", "--client", "nope"}, "invalid_request: client_id must be a GUID"},
	} {
		_, err := s.adminAs(op, d.args...)
		require.EqualError(t, err, d.wantErr, "%v", d.args)
	}
}

func (s *testServer) mustJSON(v any) string {
	b, err := json.Marshal(v)
	require.NoError(s.t, err)
	return string(b)
}

func TestListAndUpdateWithFieldMasks(t *testing.T) {
	s := newTestServer(t)
	op := map[string]any(nil)
	org := field(must(t)(s.adminAs(op, "org", "create", "--orgnr", "914994780", "--name", "God Lege AS")), "admin_credential").(map[string]any)
	for _, name := range []string{"C", "A", "B"} {
		must(t)(s.adminAs(op, "client", "create", "--name", name, "--orgnr", "914994780", "--scope", "x/y"))
	}
	// Pages by name; an organisation admin sees only its own.
	p1 := must(t)(s.adminAs(org, "client", "list", "--page-size", "2"))
	require.Len(t, p1["clients"], 2)
	require.Equal(t, "A", p1["clients"].([]any)[0].(map[string]any)["name"])
	p2 := must(t)(s.adminAs(org, "client", "list", "--page-size", "2", "--page-token", p1["next_page_token"].(string)))
	require.Len(t, p2["clients"], 2, "C and the organisation's own admin credential")
	require.Equal(t, "C", p2["clients"].([]any)[0].(map[string]any)["name"])
	require.Equal(t, "God Lege AS admin", p2["clients"].([]any)[1].(map[string]any)["name"])
	require.Empty(t, p2["next_page_token"])
	_, err := s.adminAs(org, "client", "list", "--orgnr", "971000007")
	require.EqualError(t, err, "permission_denied: you may not access this organisation")
	all := must(t)(s.adminAs(op, "client", "list", "--page-size", "100"))
	require.Greater(t, len(all["clients"].([]any)), 3, "operators see every organisation's")

	// The demo client renamed over REST: grpc-gateway derives the field mask from the body; the new name
	// is in the next token at once (the change event drops the STS's cached client).
	var opCred map[string]any
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, "operator.json"))
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &opCred))
	opTok := s.tokenForm(opCred["client_id"].(string), opCred["client_secret"].(string)).body["access_token"].(string)
	bearer := map[string][]string{"Authorization": {"Bearer " + opTok}}
	r := s.do("PATCH", "/registry/v1/clients/"+s.dev.ClientID, "application/json", []byte(`{"name":"Nytt navn"}`), bearer)
	require.Equal(t, 200, r.status, "%s", r.raw)
	require.Equal(t, "Nytt navn", field(r.body, "client", "name"))
	require.EventuallyWithT(t, func(c *assertCollect) {
		require.Equal(c, "Nytt navn", jwtPart(t, s.token(), 1)["client_name"])
	}, time.Second, 20*time.Millisecond)
	r = s.do("PATCH", "/registry/v1/clients/"+s.dev.ClientID, "application/json", []byte(`{"status":"CLIENT_STATUS_BLOCKED"}`), bearer)
	require.Equal(t, 400, r.status)
	require.Equal(t, `update_mask: field "status" cannot be updated`, r.body["error_description"])

	sys := field(must(t)(s.adminAs(op, "system", "update", "--description", "Ny beskrivelse", "6f1c2d3e-0000-4000-8000-000000000002")), "client_system").(map[string]any)
	require.Equal(t, "Ny beskrivelse", sys["description"])
	require.Equal(t, "Demo journalsystem", sys["name"], "fields outside the mask stay")
	_, err = s.adminAs(op, "system", "update", "6f1c2d3e-0000-4000-8000-000000000002")
	require.EqualError(t, err, "invalid_request: update_mask names no field")
}

// Every registry change is announced on NATS: clients on their own subject (caches drop them), the rest on
// the general one.
func TestRegistryChangesArePublished(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.NATSListen = "127.0.0.1:0" })
	nc, err := nats.Connect(s.natsURL, natsToken(t, s.cfg.DataDir))
	require.NoError(t, err)
	defer nc.Close()
	msgs := make(chan *nats.Msg, 16)
	sub, err := nc.ChanSubscribe("hnsec.registry.>", msgs)
	require.NoError(t, err)
	defer sub.Unsubscribe()
	require.NoError(t, nc.Flush())

	v := must(t)(s.adminAs(nil, "vendor", "create", "--name", "Beste Journal AS", "--orgnr", "921000006"))
	_, err = s.adminAs(nil, "client", "block", s.dev.ClientID)
	require.NoError(t, err)
	seen := map[string]string{}
	for len(seen) < 2 {
		select {
		case m := <-msgs:
			seen[m.Subject] = string(m.Data)
		case <-time.After(time.Second):
			t.Fatalf("only %v arrived within a second", seen)
		}
	}
	require.JSONEq(t, `{"object_type":"vendor","object_id":"`+field(v, "vendor", "vendor_id").(string)+`"}`, seen["hnsec.registry.changed"])
	require.Equal(t, s.dev.ClientID, seen["hnsec.registry.client.changed"])
}
