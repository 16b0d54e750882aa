package registry

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

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
		if err != nil || len(events) != 3 || events[0].After != "" || events[2].Before != "" || events[0].ID <= events[1].ID {
			t.Fatalf("ListAuditEvents = %+v, %v", events, err)
		}
		older, err := s.ListAuditEvents(ctx, "client", "c1", events[0].ID, 10)
		if err != nil || len(older) != 2 || older[0].ID != events[1].ID {
			t.Fatalf("ListAuditEvents before %d = %+v, %v", events[0].ID, older, err)
		}
	})
}
