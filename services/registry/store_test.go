package registry

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/store/storetest"
)

// The registry store's contract, on SQLite and (with HNSEC_TEST_DATABASE_URL) PostgreSQL.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		s := &sqlStore{db: storetest.Open(t, cfg, "registry", Migrations)}
		now := time.Now().UTC().Truncate(time.Second)
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		wantErr := func(what string, err, want error) {
			t.Helper()
			if !errors.Is(err, want) {
				t.Fatalf("%s: %v, want %v", what, err, want)
			}
		}

		// Settings are made once.
		first, err := s.Setting(ctx, "k", func() []byte { return []byte("one") })
		must(err)
		again, err := s.Setting(ctx, "k", func() []byte { return []byte("two") })
		if err != nil || string(first) != "one" || string(again) != "one" {
			t.Fatalf("Setting = %q, %q, %v", first, again, err)
		}

		// Vendors and organisations: unique, found, paged in order.
		for _, name := range []string{"Bravo", "Alfa", "Charlie"} {
			must(s.CreateVendor(ctx, Vendor{ID: "v-" + name, Name: name, OrganisationNumber: "910000000", CreateTime: now}))
		}
		wantErr("duplicate vendor", s.CreateVendor(ctx, Vendor{ID: "v-Alfa", Name: "Other", CreateTime: now}), store.ErrAlreadyExists)
		page, err := s.ListVendors(ctx, "", Page{After: "Alfa", Limit: 1})
		if err != nil || len(page) != 1 || page[0].Name != "Bravo" || !page[0].CreateTime.Equal(now) {
			t.Fatalf("ListVendors after Alfa = %+v, %v", page, err)
		}
		_, err = s.GetVendor(ctx, "v-none")
		wantErr("GetVendor", err, store.ErrNotFound)
		must(s.CreateOrganisation(ctx, Organisation{Number: "910000001", Name: "Parent", CreateTime: now}))
		must(s.CreateOrganisation(ctx, Organisation{Number: "910000002", Name: "Child", Parent: "910000001", CreateTime: now}))
		wantErr("duplicate organisation", s.CreateOrganisation(ctx, Organisation{Number: "910000002", Name: "X", CreateTime: now}), store.ErrAlreadyExists)
		org, err := s.GetOrganisation(ctx, "910000002")
		if err != nil || org.Parent != "910000001" || org.Name != "Child" {
			t.Fatalf("GetOrganisation = %+v, %v", org, err)
		}

		// Client systems: created, updated in a transaction, missing ones not found.
		must(s.CreateClientSystem(ctx, ClientSystem{ID: "cs1", VendorID: "v-Alfa", Name: "EPJ", Status: registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_DRAFT, CreateTime: now}))
		cs, err := s.UpdateClientSystem(ctx, "cs1", func(cs ClientSystem) (ClientSystem, error) {
			cs.Status = registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_APPROVED
			return cs, nil
		})
		if got, _ := s.GetClientSystem(ctx, "cs1"); err != nil || cs.Status != got.Status || got.Status != registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_APPROVED {
			t.Fatalf("UpdateClientSystem = %+v, %v; stored %+v", cs, err, got)
		}
		_, err = s.GetClientSystem(ctx, "cs-none")
		wantErr("GetClientSystem", err, store.ErrNotFound)

		// API resources own their scopes; a scope belongs to one API.
		must(s.CreateAPIResource(ctx, APIResource{ID: "api1", Audience: "nhn:api1", Name: "API 1", Scopes: []string{"nhn:api1/write", "nhn:api1/read"}, CreateTime: now}))
		must(s.AddAPIScope(ctx, "api1", "nhn:api1/admin"))
		wantErr("scope of two APIs", s.AddAPIScope(ctx, "api1", "nhn:api1/read"), store.ErrAlreadyExists)
		api, err := s.GetAPIResource(ctx, "api1")
		if err != nil || !slices.Equal(api.Scopes, []string{"nhn:api1/admin", "nhn:api1/read", "nhn:api1/write"}) {
			t.Fatalf("GetAPIResource = %+v, %v", api, err)
		}
		if id, err := s.APIOfScope(ctx, "nhn:api1/read"); err != nil || id != "api1" {
			t.Fatalf("APIOfScope = %q, %v", id, err)
		}
		_, err = s.APIOfScope(ctx, "nhn:none")
		wantErr("APIOfScope", err, store.ErrNotFound)

		// Clients: created with their first secret and grants; only approved grants are scopes.
		grant := func(client, scope string, st registryv1.GrantStatus) Grant {
			return Grant{ClientID: client, Scope: scope, Status: st, UpdateTime: now}
		}
		for _, id := range []string{"c2", "c1", "c3"} {
			must(s.CreateClient(ctx, Client{ID: id, Name: "Klient", OrganisationNumber: "910000002", ClientSystemID: "cs1",
				Status: registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, CreateTime: now},
				Secret{ID: "sec-" + id, Hash: []byte("hash-" + id), CreateTime: now},
				[]Grant{grant(id, "nhn:api1/read", registryv1.GrantStatus_GRANT_STATUS_APPROVED), grant(id, "nhn:api1/write", registryv1.GrantStatus_GRANT_STATUS_PENDING)}))
		}
		wantErr("duplicate client", s.CreateClient(ctx, Client{ID: "c1", Name: "X", OrganisationNumber: "910000002", CreateTime: now},
			Secret{ID: "sec-x", Hash: []byte("h"), CreateTime: now}, nil), store.ErrAlreadyExists)
		c, err := s.GetClient(ctx, "c1")
		if err != nil || !slices.Equal(c.Scopes, []string{"nhn:api1/read"}) || len(c.Grants) != 2 || c.ParentOrganisationNumber != "910000001" {
			t.Fatalf("GetClient = %+v, %v", c, err)
		}
		clients, err := s.ListClients(ctx, "910000002", Page{After: "Klient\x00c1", Limit: 10})
		if err != nil || len(clients) != 2 || clients[0].ID != "c2" || clients[1].ID != "c3" {
			t.Fatalf("ListClients after c1 = %+v, %v", clients, err)
		}
		g, err := s.UpdateGrant(ctx, "c1", "nhn:api1/write", func(g Grant, ok bool) (Grant, error) {
			if !ok {
				return g, errors.New("the pending grant is not there")
			}
			g.Status = registryv1.GrantStatus_GRANT_STATUS_APPROVED
			return g, nil
		})
		must(err)
		if c, _ = s.GetClient(ctx, "c1"); g.Status != registryv1.GrantStatus_GRANT_STATUS_APPROVED || len(c.Scopes) != 2 {
			t.Fatalf("after approving: %+v, scopes %v", g, c.Scopes)
		}
		if grants, err := s.ListGrants(ctx, "", "api1"); err != nil || len(grants) != 6 {
			t.Fatalf("ListGrants of api1 = %d, %v", len(grants), err)
		}
		c, err = s.UpdateClient(ctx, "c1", func(c Client) (Client, error) {
			c.Status = registryv1.ClientStatus_CLIENT_STATUS_BLOCKED
			return c, nil
		})
		if err != nil || c.Status != registryv1.ClientStatus_CLIENT_STATUS_BLOCKED {
			t.Fatalf("UpdateClient = %+v, %v", c, err)
		}

		// OpenID Connect settings: stored with the client, read back whole, kept by other updates, gone
		// with the client.
		oidc := &OIDCSettings{ClientType: registryv1.ClientType_CLIENT_TYPE_PUBLIC, ApplicationType: registryv1.ApplicationType_APPLICATION_TYPE_NATIVE,
			RedirectURIs: []string{"no.example.app:/cb", "https://app.example.no/cb"}, RequirePAR: true, RequireMTLS: true,
			RefreshAllowed: true, RefreshWindow: 30 * time.Minute, RefreshCap: 12 * time.Hour, LogoutMode: registryv1.LogoutMode_LOGOUT_MODE_LINKED,
			BackchannelLogoutURI: "https://app.example.no/logout", AllowedScopes: []string{"openid", "oidcnavn"}, BilateralAudiences: []string{"nhn:aud"}}
		c, err = s.UpdateClient(ctx, "c1", func(c Client) (Client, error) {
			if c.OIDC != nil {
				return c, errors.New("a new client has OIDC settings")
			}
			c.OIDC = oidc
			return c, nil
		})
		if err != nil || !reflect.DeepEqual(c.OIDC, oidc) {
			t.Fatalf("UpdateClient with OIDC settings = %+v, %v", c.OIDC, err)
		}
		c, err = s.UpdateClient(ctx, "c1", func(c Client) (Client, error) {
			c.Name = "Klient 1"
			return c, nil
		})
		if err != nil || !reflect.DeepEqual(c.OIDC, oidc) {
			t.Fatalf("OIDC settings after a rename = %+v, %v", c.OIDC, err)
		}
		if clients, err := s.ListClients(ctx, "910000002", Page{Limit: 10}); err != nil || len(clients) != 3 || clients[0].OIDC != nil || clients[2].ID != "c1" || !reflect.DeepEqual(clients[2].OIDC, oidc) {
			t.Fatalf("ListClients OIDC settings = %+v, %v", clients, err)
		}
		if events, err := s.ListAuditEvents(ctx, "client", "c1", 0, 2); err != nil || !strings.Contains(events[1].After, "no.example.app:/cb") ||
			strings.Contains(events[1].Before, "no.example.app:/cb") {
			t.Fatalf("audit of the OIDC settings = %+v, %v", events, err)
		}

		// Secrets: added, expired in a transaction that sees them all; unknown ones not found.
		must(s.AddSecret(ctx, "c1", Secret{ID: "sec-c1-2", Hash: []byte("hash-2"), CreateTime: now.Add(time.Second)}))
		sec, err := s.UpdateSecret(ctx, "c1", "sec-c1", func(sec Secret, all []Secret) (Secret, error) {
			if len(all) != 2 {
				return sec, errors.New("the update does not see both secrets")
			}
			sec.ExpireTime = now.Add(time.Hour)
			return sec, nil
		})
		must(err)
		secrets, err := s.ListSecrets(ctx, "c1")
		if err != nil || len(secrets) != 2 || !secrets[0].ExpireTime.Equal(sec.ExpireTime) || string(secrets[1].Hash) != "hash-2" {
			t.Fatalf("ListSecrets = %+v, %v", secrets, err)
		}
		_, err = s.UpdateSecret(ctx, "c1", "sec-c2", func(sec Secret, _ []Secret) (Secret, error) { return sec, nil })
		wantErr("another client's secret", err, store.ErrNotFound)

		// Keys: unique per client, listed, removed once.
		must(s.AddKey(ctx, "c1", Key{KID: "k1", Kty: "EC", Alg: "ES256", JWK: "{}", CreateTime: now}))
		wantErr("duplicate key", s.AddKey(ctx, "c1", Key{KID: "k1", Kty: "EC", Alg: "ES256", JWK: "{}", CreateTime: now}), store.ErrAlreadyExists)
		must(s.AddKey(ctx, "c2", Key{KID: "k1", Kty: "EC", Alg: "ES256", JWK: "{}", CreateTime: now}))
		if keys, err := s.ListKeys(ctx, "c1"); err != nil || len(keys) != 1 || keys[0].Alg != "ES256" {
			t.Fatalf("ListKeys = %+v, %v", keys, err)
		}
		must(s.RemoveKey(ctx, "c1", "k1"))
		wantErr("removing a removed key", s.RemoveKey(ctx, "c1", "k1"), store.ErrNotFound)

		// Client assertions: a jti is used once until it expires.
		must(s.UseAssertion(ctx, "c1", "jti-1", now.Add(time.Minute), now))
		wantErr("replayed assertion", s.UseAssertion(ctx, "c1", "jti-1", now.Add(time.Minute), now), store.ErrAlreadyExists)
		must(s.UseAssertion(ctx, "c2", "jti-1", now.Add(time.Minute), now))
		must(s.UseAssertion(ctx, "c1", "jti-1", now.Add(3*time.Minute), now.Add(2*time.Minute)))

		// Deleting a client removes what it owns; the audit trail keeps every change, newest first.
		must(s.DeleteClient(ctx, "c1"))
		_, err = s.GetClient(ctx, "c1")
		wantErr("deleted client", err, store.ErrNotFound)
		wantErr("deleting twice", s.DeleteClient(ctx, "c1"), store.ErrNotFound)
		if keys, err := s.ListKeys(ctx, "c2"); err != nil || len(keys) != 1 {
			t.Fatalf("another client's keys after the delete: %+v, %v", keys, err)
		}
		events, err := s.ListAuditEvents(ctx, "client", "c1", 0, 10)
		if err != nil || len(events) != 5 || events[0].After != "" || events[4].Before != "" || events[0].ID <= events[1].ID {
			t.Fatalf("ListAuditEvents = %+v, %v", events, err)
		}
		older, err := s.ListAuditEvents(ctx, "client", "c1", events[0].ID, 10)
		if err != nil || len(older) != 4 || older[0].ID != events[1].ID {
			t.Fatalf("ListAuditEvents before %d = %+v, %v", events[0].ID, older, err)
		}
	})
}

// Concurrent updates of one row each see the one before (none is lost), and a decision taken on what an
// update read holds when another update runs at once: of two revocations of a client's last two secrets,
// one is refused.
func TestStoreConcurrentUpdates(t *testing.T) {
	storetest.Run(t, func(t *testing.T, cfg store.Config) {
		ctx := context.Background()
		s := &sqlStore{db: storetest.Open(t, cfg, "registry", Migrations)}
		now := time.Now().UTC().Truncate(time.Second)
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(s.CreateVendor(ctx, Vendor{ID: "v1", Name: "Vendor", OrganisationNumber: "910000000", CreateTime: now}))
		must(s.CreateOrganisation(ctx, Organisation{Number: "910000002", Name: "Org", CreateTime: now}))
		must(s.CreateClientSystem(ctx, ClientSystem{ID: "cs1", VendorID: "v1", Name: "EPJ", CreateTime: now,
			Status: registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_DRAFT}))
		newClient := func(id string) {
			t.Helper()
			must(s.CreateClient(ctx, Client{ID: id, Name: "K", OrganisationNumber: "910000002", ClientSystemID: "cs1",
				Status: registryv1.ClientStatus_CLIENT_STATUS_ACTIVE, CreateTime: now},
				Secret{ID: id + "-a", Hash: []byte("a"), CreateTime: now},
				[]Grant{{ClientID: id, Scope: "nhn:api/read", Status: registryv1.GrantStatus_GRANT_STATUS_APPROVED, UpdateTime: now}}))
		}
		const n = 8

		// Revoking a client's last two secrets at once leaves one working.
		errLast := errors.New("the client would have no working secret left")
		for round := range 20 {
			id := fmt.Sprintf("r%d", round)
			newClient(id)
			must(s.AddSecret(ctx, id, Secret{ID: id + "-b", Hash: []byte("b"), CreateTime: now}))
			ids := []string{id + "-a", id + "-b"}
			must(storetest.Concurrently(len(ids), func(i int) error {
				_, err := s.UpdateSecret(ctx, id, ids[i], func(sec Secret, all []Secret) (Secret, error) {
					for _, o := range all {
						if o.ID != sec.ID && o.ExpireTime.IsZero() {
							sec.ExpireTime = now
							return sec, nil
						}
					}
					return sec, errLast
				})
				if errors.Is(err, errLast) {
					return nil
				}
				return err
			}))
			secrets, err := s.ListSecrets(ctx, id)
			must(err)
			if !slices.ContainsFunc(secrets, func(sec Secret) bool { return sec.ExpireTime.IsZero() }) {
				t.Errorf("round %d: both of the client's last secrets were revoked", round)
				break
			}
		}

		// Clients, client systems and grants: every update builds on the one before.
		newClient("c1")
		must(storetest.Concurrently(n, func(int) error {
			_, err := s.UpdateClient(ctx, "c1", func(c Client) (Client, error) {
				c.Name += "x"
				return c, nil
			})
			return err
		}))
		if c, err := s.GetClient(ctx, "c1"); err != nil || c.Name != "K"+strings.Repeat("x", n) {
			t.Errorf("after %d concurrent UpdateClient: name %q, %v", n, c.Name, err)
		}
		must(storetest.Concurrently(n, func(int) error {
			_, err := s.UpdateClientSystem(ctx, "cs1", func(cs ClientSystem) (ClientSystem, error) {
				cs.Description += "x"
				return cs, nil
			})
			return err
		}))
		if cs, err := s.GetClientSystem(ctx, "cs1"); err != nil || cs.Description != strings.Repeat("x", n) {
			t.Errorf("after %d concurrent UpdateClientSystem: description %q, %v", n, cs.Description, err)
		}
		must(storetest.Concurrently(n, func(int) error {
			_, err := s.UpdateGrant(ctx, "c1", "nhn:api/read", func(g Grant, ok bool) (Grant, error) {
				if !ok {
					return g, errors.New("the grant is not there")
				}
				g.UpdateTime = g.UpdateTime.Add(time.Second)
				return g, nil
			})
			return err
		}))
		if grants, err := s.ListGrants(ctx, "c1", ""); err != nil || len(grants) != 1 || !grants[0].UpdateTime.Equal(now.Add(n*time.Second)) {
			t.Errorf("after %d concurrent UpdateGrant: %+v, %v", n, grants, err)
		}

		// Of concurrent requests for a grant that is not there yet, one makes it.
		errExists := errors.New("the grant is there already")
		var made atomic.Int32
		must(storetest.Concurrently(n, func(int) error {
			_, err := s.UpdateGrant(ctx, "c1", "nhn:api/write", func(g Grant, ok bool) (Grant, error) {
				if ok {
					return g, errExists
				}
				return Grant{ClientID: "c1", Scope: "nhn:api/write", Status: registryv1.GrantStatus_GRANT_STATUS_PENDING, UpdateTime: now}, nil
			})
			if errors.Is(err, errExists) {
				return nil
			}
			if err == nil {
				made.Add(1)
			}
			return err
		}))
		if made.Load() != 1 {
			t.Errorf("%d of %d concurrent requests made the grant, want 1", made.Load(), n)
		}
	})
}

// The grant queries are answered from an index: ListGrants runs on the path of every GetClient, so a scan
// would slow every client authentication as the registry grows.
func TestGrantQueriesUseAnIndex(t *testing.T) {
	db := storetest.Open(t, store.Config{DataDir: t.TempDir()}, "registry", Migrations)
	for _, tc := range []struct {
		clientID, apiID, want string
	}{
		{"c1", "", "SEARCH grants USING INDEX sqlite_autoindex_grants_1 (client_id=?)"},
		{"c1", "a1", "SEARCH grants USING INDEX sqlite_autoindex_grants_1 (client_id=?"},
		{"", "a1", "USING INDEX api_scopes_api (api_id=?)"},
	} {
		query, args := grantsQuery(tc.clientID, tc.apiID)
		rows, err := db.Read.Query(`EXPLAIN QUERY PLAN `+query, args...)
		require.NoError(t, err)
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
			plan = append(plan, detail)
		}
		require.NoError(t, rows.Close())
		require.Contains(t, strings.Join(plan, "\n"), tc.want, "client %q api %q", tc.clientID, tc.apiID)
		require.NotContains(t, strings.Join(plan, "\n"), "SCAN grants", "client %q api %q", tc.clientID, tc.apiID)
	}
}
