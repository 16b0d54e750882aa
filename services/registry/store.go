package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/store"
)

// Migrations is the registry store's schema (append only), for SQLite and PostgreSQL.
var Migrations = store.Migrations{SQLite: sqliteMigrations, Postgres: postgresMigrations}

var sqliteMigrations = []string{`
CREATE TABLE settings (
	name  TEXT PRIMARY KEY,
	value BLOB NOT NULL
);
CREATE TABLE vendors (
	id                  TEXT PRIMARY KEY,
	name                TEXT NOT NULL UNIQUE,
	organisation_number TEXT NOT NULL,
	create_time         INTEGER NOT NULL
);
CREATE TABLE organisations (
	organisation_number TEXT PRIMARY KEY,
	name                TEXT NOT NULL,
	parent_number       TEXT NOT NULL DEFAULT '',
	create_time         INTEGER NOT NULL
);
CREATE TABLE client_systems (
	id          TEXT PRIMARY KEY,
	vendor_id   TEXT NOT NULL REFERENCES vendors(id),
	name        TEXT NOT NULL UNIQUE,
	status      TEXT NOT NULL,
	create_time INTEGER NOT NULL
);
CREATE TABLE clients (
	client_id           TEXT PRIMARY KEY,
	name                TEXT NOT NULL,
	organisation_number TEXT NOT NULL,
	client_system_id    TEXT NOT NULL DEFAULT '',
	status              INTEGER NOT NULL,
	scopes              TEXT NOT NULL,
	create_time         INTEGER NOT NULL
);
CREATE TABLE client_secrets (
	id          TEXT PRIMARY KEY,
	client_id   TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
	hash        BLOB NOT NULL,
	create_time INTEGER NOT NULL,
	expire_time INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX client_secrets_client ON client_secrets(client_id);
`, `
ALTER TABLE clients ADD COLUMN admin_role INTEGER NOT NULL DEFAULT 0;
ALTER TABLE clients ADD COLUMN admin_tenant TEXT NOT NULL DEFAULT '';
UPDATE clients SET admin_role = 1 WHERE ' ' || scopes || ' ' LIKE '% hnsec:registry.admin %';
ALTER TABLE client_systems ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE client_systems ADD COLUMN reason TEXT NOT NULL DEFAULT '';
CREATE INDEX client_systems_vendor ON client_systems(vendor_id, name);
`, `
CREATE TABLE api_resources (
	id          TEXT PRIMARY KEY,
	audience    TEXT NOT NULL UNIQUE,
	name        TEXT NOT NULL,
	create_time INTEGER NOT NULL
);
CREATE TABLE api_scopes (
	scope  TEXT PRIMARY KEY,
	api_id TEXT NOT NULL REFERENCES api_resources(id)
);
CREATE INDEX api_scopes_api ON api_scopes(api_id);
CREATE TABLE grants (
	client_id   TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
	scope       TEXT NOT NULL,
	status      INTEGER NOT NULL,
	update_time INTEGER NOT NULL,
	PRIMARY KEY (client_id, scope)
);
CREATE INDEX grants_scope ON grants(scope);
WITH RECURSIVE split(client_id, scope, rest) AS (
	SELECT client_id, '', scopes || ' ' FROM clients
	UNION ALL
	SELECT client_id, substr(rest, 1, instr(rest, ' ') - 1), substr(rest, instr(rest, ' ') + 1) FROM split WHERE rest <> ''
)
INSERT INTO grants (client_id, scope, status, update_time)
	SELECT client_id, scope, 2, CAST(strftime('%s', 'now') AS INTEGER) FROM split WHERE scope <> '';
ALTER TABLE clients DROP COLUMN scopes;
`, `
CREATE TABLE client_keys (
	client_id   TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
	kid         TEXT NOT NULL,
	kty         TEXT NOT NULL,
	alg         TEXT NOT NULL,
	jwk         TEXT NOT NULL,
	create_time INTEGER NOT NULL,
	PRIMARY KEY (client_id, kid)
);
CREATE TABLE used_assertions (
	client_id   TEXT NOT NULL,
	jti         TEXT NOT NULL,
	expire_time INTEGER NOT NULL,
	PRIMARY KEY (client_id, jti)
);
CREATE INDEX used_assertions_expiry ON used_assertions(expire_time);
`, `
CREATE TABLE audit_events (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	time_ms         INTEGER NOT NULL,
	actor_client_id TEXT NOT NULL,
	actor_role      TEXT NOT NULL,
	action          TEXT NOT NULL,
	object_type     TEXT NOT NULL,
	object_id       TEXT NOT NULL,
	before_json     TEXT NOT NULL,
	after_json      TEXT NOT NULL,
	korrelasjons_id TEXT NOT NULL
);
CREATE INDEX audit_events_object ON audit_events(object_type, object_id, id);
`, `
ALTER TABLE settings RENAME TO settings_kv;
`, `
CREATE TABLE client_oidc (
	client_id TEXT PRIMARY KEY REFERENCES clients(client_id) ON DELETE CASCADE,
	settings  TEXT NOT NULL
);
`}

// postgresMigrations create on PostgreSQL, in the first, the schema SQLite reached in five steps; the
// others keep the lists the same length.
var postgresMigrations = []string{`
CREATE TABLE settings (
	name  TEXT PRIMARY KEY,
	value BYTEA NOT NULL
);
CREATE TABLE vendors (
	id                  TEXT PRIMARY KEY,
	name                TEXT NOT NULL UNIQUE,
	organisation_number TEXT NOT NULL,
	create_time         BIGINT NOT NULL
);
CREATE TABLE organisations (
	organisation_number TEXT PRIMARY KEY,
	name                TEXT NOT NULL,
	parent_number       TEXT NOT NULL DEFAULT '',
	create_time         BIGINT NOT NULL
);
CREATE TABLE client_systems (
	id          TEXT PRIMARY KEY,
	vendor_id   TEXT NOT NULL REFERENCES vendors(id),
	name        TEXT NOT NULL UNIQUE,
	status      TEXT NOT NULL,
	create_time BIGINT NOT NULL,
	description TEXT NOT NULL DEFAULT '',
	reason      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX client_systems_vendor ON client_systems(vendor_id, name);
CREATE TABLE clients (
	client_id           TEXT PRIMARY KEY,
	name                TEXT NOT NULL,
	organisation_number TEXT NOT NULL,
	client_system_id    TEXT NOT NULL DEFAULT '',
	status              INTEGER NOT NULL,
	create_time         BIGINT NOT NULL,
	admin_role          INTEGER NOT NULL DEFAULT 0,
	admin_tenant        TEXT NOT NULL DEFAULT ''
);
CREATE TABLE client_secrets (
	id          TEXT PRIMARY KEY,
	client_id   TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
	hash        BYTEA NOT NULL,
	create_time BIGINT NOT NULL,
	expire_time BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX client_secrets_client ON client_secrets(client_id);
CREATE TABLE api_resources (
	id          TEXT PRIMARY KEY,
	audience    TEXT NOT NULL UNIQUE,
	name        TEXT NOT NULL,
	create_time BIGINT NOT NULL
);
CREATE TABLE api_scopes (
	scope  TEXT PRIMARY KEY,
	api_id TEXT NOT NULL REFERENCES api_resources(id)
);
CREATE INDEX api_scopes_api ON api_scopes(api_id);
CREATE TABLE grants (
	client_id   TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
	scope       TEXT NOT NULL,
	status      INTEGER NOT NULL,
	update_time BIGINT NOT NULL,
	PRIMARY KEY (client_id, scope)
);
CREATE INDEX grants_scope ON grants(scope);
CREATE TABLE client_keys (
	client_id   TEXT NOT NULL REFERENCES clients(client_id) ON DELETE CASCADE,
	kid         TEXT NOT NULL,
	kty         TEXT NOT NULL,
	alg         TEXT NOT NULL,
	jwk         TEXT NOT NULL,
	create_time BIGINT NOT NULL,
	PRIMARY KEY (client_id, kid)
);
CREATE TABLE used_assertions (
	client_id   TEXT NOT NULL,
	jti         TEXT NOT NULL,
	expire_time BIGINT NOT NULL,
	PRIMARY KEY (client_id, jti)
);
CREATE INDEX used_assertions_expiry ON used_assertions(expire_time);
CREATE TABLE audit_events (
	id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	time_ms         BIGINT NOT NULL,
	actor_client_id TEXT NOT NULL,
	actor_role      TEXT NOT NULL,
	action          TEXT NOT NULL,
	object_type     TEXT NOT NULL,
	object_id       TEXT NOT NULL,
	before_json     TEXT NOT NULL,
	after_json      TEXT NOT NULL,
	korrelasjons_id TEXT NOT NULL
);
CREATE INDEX audit_events_object ON audit_events(object_type, object_id, id);
`, `SELECT 1`, `SELECT 1`, `SELECT 1`, `SELECT 1`, `
ALTER TABLE settings RENAME TO settings_kv;
`, `
CREATE TABLE client_oidc (
	client_id TEXT PRIMARY KEY REFERENCES clients(client_id) ON DELETE CASCADE,
	settings  TEXT NOT NULL
);
`}

// Client is a stored client configuration.
type Client struct {
	ID                 string
	Name               string
	OrganisationNumber string
	ClientSystemID     string
	Status             registryv1.ClientStatus
	Scopes             []string
	CreateTime         time.Time
	// ParentOrganisationNumber is the owning organisation's parent, if any (read only).
	ParentOrganisationNumber string
	// AdminRole is the registry role of an admin credential (unspecified for other clients).
	AdminRole registryv1.Role
	// AdminTenant is the vendor id or organisation number an admin credential is bound to.
	AdminTenant string
	// Grants are the client's grants in every status (read only: they change through UpdateGrant).
	Grants []Grant
	// OIDC are the client's OpenID Connect settings; nil for a client that is no OpenID Connect client.
	OIDC *OIDCSettings `json:",omitempty"`
}

// Grant is a client's access to one scope.
type Grant struct {
	ClientID   string
	Scope      string
	Status     registryv1.GrantStatus
	UpdateTime time.Time
}

// Key is a client's registered public key.
type Key struct {
	KID        string
	Kty        string
	Alg        string
	JWK        string
	CreateTime time.Time
}

// APIResource is an API: an audience and its scopes.
type APIResource struct {
	ID         string
	Audience   string
	Name       string
	Scopes     []string
	CreateTime time.Time
}

// Secret is a stored client secret: only its keyed hash.
type Secret struct {
	ID         string
	Hash       []byte
	CreateTime time.Time
	// ExpireTime is zero for a secret that does not expire.
	ExpireTime time.Time
}

// Vendor is a system vendor.
type Vendor struct {
	ID                 string
	Name               string
	OrganisationNumber string
	CreateTime         time.Time
}

// Organisation is a virksomhet that owns client configurations.
type Organisation struct {
	Number     string
	Name       string
	Parent     string
	CreateTime time.Time
}

// ClientSystem is a vendor's system; client configurations are instances of it.
type ClientSystem struct {
	ID          string
	VendorID    string
	Name        string
	Description string
	Status      registryv1.ClientSystemStatus
	Reason      string
	CreateTime  time.Time
}

// Page bounds a list: items after After (in the list's order), at most Limit.
type Page struct {
	After string
	Limit int
}

// Store is the registry's storage contract.
type Store interface {
	// Setting returns the named setting, storing create()'s value first when there is none.
	Setting(ctx context.Context, name string, create func() []byte) ([]byte, error)
	// CreateVendor stores v; ErrAlreadyExists when the id or name is taken.
	CreateVendor(ctx context.Context, v Vendor) error
	// CreateOrganisation stores o; ErrAlreadyExists when the number is taken.
	CreateOrganisation(ctx context.Context, o Organisation) error
	// CreateClientSystem stores s; ErrAlreadyExists when the id or name is taken.
	CreateClientSystem(ctx context.Context, s ClientSystem) error
	// GetVendor returns the vendor; ErrNotFound when there is none.
	GetVendor(ctx context.Context, id string) (Vendor, error)
	// ListVendors lists vendors by name; only, when set, limits it to that vendor.
	ListVendors(ctx context.Context, only string, p Page) ([]Vendor, error)
	// GetClientSystem returns the system; ErrNotFound when there is none.
	GetClientSystem(ctx context.Context, id string) (ClientSystem, error)
	// ListClientSystems lists systems by name; vendorID, when set, limits it to that vendor's.
	ListClientSystems(ctx context.Context, vendorID string, p Page) ([]ClientSystem, error)
	// UpdateClientSystem applies fn to the stored system atomically and stores its result.
	UpdateClientSystem(ctx context.Context, id string, fn func(ClientSystem) (ClientSystem, error)) (ClientSystem, error)
	// GetOrganisation returns the organisation; ErrNotFound when there is none.
	GetOrganisation(ctx context.Context, number string) (Organisation, error)
	// ListOrganisations lists organisations by number; only, when set, limits it to that one.
	ListOrganisations(ctx context.Context, only string, p Page) ([]Organisation, error)
	// CreateClient stores c with its first secret and its grants.
	CreateClient(ctx context.Context, c Client, first Secret, grants []Grant) error
	// CreateAPIResource stores an API with its scopes; ErrAlreadyExists when the audience or a scope is taken.
	CreateAPIResource(ctx context.Context, api APIResource) error
	// GetAPIResource returns the API; ErrNotFound when there is none.
	GetAPIResource(ctx context.Context, id string) (APIResource, error)
	// ListAPIResources lists APIs by audience.
	ListAPIResources(ctx context.Context, p Page) ([]APIResource, error)
	// AddAPIScope adds a scope to an API; ErrAlreadyExists when the scope is taken.
	AddAPIScope(ctx context.Context, apiID, scope string) error
	// APIOfScope returns the id of the API a scope belongs to; ErrNotFound for an unregistered scope.
	APIOfScope(ctx context.Context, scope string) (string, error)
	// UpdateGrant applies fn to the client's grant for scope (ok is false when there is none yet)
	// atomically and stores its result.
	UpdateGrant(ctx context.Context, clientID, scope string, fn func(g Grant, ok bool) (Grant, error)) (Grant, error)
	// ListGrants lists the grants of a client, or on an API's scopes.
	ListGrants(ctx context.Context, clientID, apiID string) ([]Grant, error)
	// ListClients lists clients by name and id (the page key is name, NUL, id); orgnr, when set, limits
	// it to one organisation's. Grants are not loaded.
	ListClients(ctx context.Context, orgnr string, p Page) ([]Client, error)
	// GetClient returns the client; ErrNotFound when there is none.
	GetClient(ctx context.Context, id string) (Client, error)
	// AddSecret stores another secret of the client.
	AddSecret(ctx context.Context, clientID string, sec Secret) error
	// UpdateSecret applies fn to the client's secret atomically and stores its expiry; ErrNotFound when
	// there is no such secret.
	UpdateSecret(ctx context.Context, clientID, secretID string, fn func(Secret, []Secret) (Secret, error)) (Secret, error)
	// AddKey stores a client's public key; ErrAlreadyExists when the kid is taken.
	AddKey(ctx context.Context, clientID string, k Key) error
	// ListKeys returns a client's public keys.
	ListKeys(ctx context.Context, clientID string) ([]Key, error)
	// RemoveKey deletes a client's public key; ErrNotFound when there is none.
	RemoveKey(ctx context.Context, clientID, kid string) error
	// UseAssertion records a client assertion's jti, remembered until keep (later than the assertion's exp:
	// it is accepted for a leeway after), forgetting those whose keep is before now; ErrAlreadyExists when
	// the jti was used already.
	UseAssertion(ctx context.Context, clientID, jti string, keep, now time.Time) error
	// Audit records a change that made no other write (an action another service was allowed).
	Audit(ctx context.Context, c change) error
	// APIByAudience returns the API of an audience; ErrNotFound when there is none.
	APIByAudience(ctx context.Context, audience string) (APIResource, error)
	// MoveAPIScope moves a registered scope to another API.
	MoveAPIScope(ctx context.Context, scope, apiID string) error
	// ListAuditEvents lists audit events newest first, those before id beforeID when it is positive,
	// optionally of one object type and id.
	ListAuditEvents(ctx context.Context, objectType, objectID string, beforeID int64, limit int) ([]AuditEvent, error)
	// ListSecrets returns the client's secrets, oldest first (none for a client that does not exist).
	ListSecrets(ctx context.Context, clientID string) ([]Secret, error)
	// DeleteClient deletes the client with its secrets, keys and grants; ErrNotFound when there is none.
	DeleteClient(ctx context.Context, id string) error
	// UpdateClient applies fn to the stored client atomically and stores its result.
	UpdateClient(ctx context.Context, id string, fn func(Client) (Client, error)) (Client, error)
}

// sqlStore is Store on SQL.
type sqlStore struct{ db *store.DB }

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Setting(ctx context.Context, name string, create func() []byte) ([]byte, error) {
	return s.db.Setting(ctx, name, create)
}

func (s *sqlStore) CreateVendor(ctx context.Context, v Vendor) error {
	return s.insert(ctx, change{"vendor", v.ID, nil, v}, `INSERT INTO vendors (id, name, organisation_number, create_time) VALUES (?, ?, ?, ?)`,
		v.ID, v.Name, v.OrganisationNumber, v.CreateTime.Unix())
}

func (s *sqlStore) CreateOrganisation(ctx context.Context, o Organisation) error {
	return s.insert(ctx, change{"organisation", o.Number, nil, o}, `INSERT INTO organisations (organisation_number, name, parent_number, create_time) VALUES (?, ?, ?, ?)`,
		o.Number, o.Name, o.Parent, o.CreateTime.Unix())
}

func (s *sqlStore) CreateClientSystem(ctx context.Context, cs ClientSystem) error {
	return s.insert(ctx, change{"client_system", cs.ID, nil, cs}, `INSERT INTO client_systems (id, vendor_id, name, description, status, reason, create_time)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, cs.ID, cs.VendorID, cs.Name, cs.Description, systemStatusText[cs.Status], cs.Reason,
		cs.CreateTime.Unix())
}

// systemStatusText is how client system statuses are stored.
var systemStatusText = map[registryv1.ClientSystemStatus]string{
	registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_DRAFT:            "draft",
	registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_PENDING_APPROVAL: "pending_approval",
	registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_APPROVED:         "approved",
	registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_REJECTED:         "rejected",
}

func systemStatusFromText(s string) registryv1.ClientSystemStatus {
	for st, text := range systemStatusText {
		if text == s {
			return st
		}
	}
	return registryv1.ClientSystemStatus_CLIENT_SYSTEM_STATUS_UNSPECIFIED
}

func (s *sqlStore) GetVendor(ctx context.Context, id string) (Vendor, error) {
	vs, err := s.ListVendors(ctx, id, Page{Limit: 1})
	if err == nil && len(vs) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return Vendor{}, err
	}
	return vs[0], nil
}

func (s *sqlStore) ListVendors(ctx context.Context, only string, p Page) ([]Vendor, error) {
	return store.Query(ctx, s.db, `SELECT id, name, organisation_number, create_time FROM vendors
		WHERE (? = '' OR id = ?) AND name > ? ORDER BY name LIMIT ?`, []any{only, only, p.After, p.Limit},
		func(sc scanner) (Vendor, error) {
			var v Vendor
			var created int64
			err := sc.Scan(&v.ID, &v.Name, &v.OrganisationNumber, &created)
			v.CreateTime = time.Unix(created, 0).UTC()
			return v, err
		})
}

const systemSelect = `SELECT id, vendor_id, name, description, status, reason, create_time FROM client_systems`

func scanSystem(sc scanner) (ClientSystem, error) {
	var cs ClientSystem
	var status string
	var created int64
	err := sc.Scan(&cs.ID, &cs.VendorID, &cs.Name, &cs.Description, &status, &cs.Reason, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return ClientSystem{}, store.ErrNotFound
	}
	cs.Status, cs.CreateTime = systemStatusFromText(status), time.Unix(created, 0).UTC()
	return cs, err
}

func (s *sqlStore) GetClientSystem(ctx context.Context, id string) (ClientSystem, error) {
	return scanSystem(s.db.Read.QueryRowContext(ctx, systemSelect+` WHERE id = ?`, id))
}

func (s *sqlStore) ListClientSystems(ctx context.Context, vendorID string, p Page) ([]ClientSystem, error) {
	return store.Query(ctx, s.db, systemSelect+` WHERE (? = '' OR vendor_id = ?) AND name > ? ORDER BY name LIMIT ?`,
		[]any{vendorID, vendorID, p.After, p.Limit}, scanSystem)
}

func (s *sqlStore) UpdateClientSystem(ctx context.Context, id string, fn func(ClientSystem) (ClientSystem, error)) (ClientSystem, error) {
	var out ClientSystem
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		old, err := scanSystem(tx.QueryRowContext(ctx, systemSelect+` WHERE id = ?`+s.db.ForUpdate(), id))
		if err != nil {
			return err
		}
		if out, err = fn(old); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `UPDATE client_systems SET name = ?, description = ?, status = ?, reason = ? WHERE id = ?`,
			out.Name, out.Description, systemStatusText[out.Status], out.Reason, id); err != nil {
			return uniqueViolation(err)
		}
		return recordAudit(ctx, tx, change{"client_system", id, old, out})
	})
	return out, err
}

func (s *sqlStore) GetOrganisation(ctx context.Context, number string) (Organisation, error) {
	os, err := s.ListOrganisations(ctx, number, Page{Limit: 1})
	if err == nil && len(os) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return Organisation{}, err
	}
	return os[0], nil
}

func (s *sqlStore) ListOrganisations(ctx context.Context, only string, p Page) ([]Organisation, error) {
	return store.Query(ctx, s.db, `SELECT organisation_number, name, parent_number, create_time FROM organisations
		WHERE (? = '' OR organisation_number = ?) AND organisation_number > ? ORDER BY organisation_number LIMIT ?`,
		[]any{only, only, p.After, p.Limit}, func(sc scanner) (Organisation, error) {
			var o Organisation
			var created int64
			err := sc.Scan(&o.Number, &o.Name, &o.Parent, &created)
			o.CreateTime = time.Unix(created, 0).UTC()
			return o, err
		})
}

// insert runs one insert and records its change in the same transaction.
func (s *sqlStore) insert(ctx context.Context, c change, query string, args ...any) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, query, args...); err != nil {
			return uniqueViolation(err)
		}
		return recordAudit(ctx, tx, c)
	})
}

// uniqueViolation maps a unique-constraint failure to store.ErrAlreadyExists.
func uniqueViolation(err error) error {
	if store.IsUniqueViolation(err) {
		return fmt.Errorf("%w: %w", store.ErrAlreadyExists, err)
	}
	return err
}

func (s *sqlStore) CreateClient(ctx context.Context, c Client, first Secret, grants []Grant) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO clients (client_id, name, organisation_number, client_system_id, status,
			create_time, admin_role, admin_tenant) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, c.ID, c.Name, c.OrganisationNumber,
			c.ClientSystemID, int32(c.Status), c.CreateTime.Unix(), int32(c.AdminRole), c.AdminTenant)
		if err != nil {
			return uniqueViolation(err)
		}
		for _, g := range grants {
			if err := putGrant(ctx, tx, g); err != nil {
				return err
			}
			if err := recordAudit(ctx, tx, change{"grant", c.ID + " " + g.Scope, nil, g}); err != nil {
				return err
			}
		}
		after := c
		after.Grants = grants
		if err := recordAudit(ctx, tx, change{"client", c.ID, nil, after}); err != nil {
			return err
		}
		if err := recordAudit(ctx, tx, change{"client_secret", first.ID, nil, secretMetadata(first)}); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO client_secrets (id, client_id, hash, create_time, expire_time) VALUES (?, ?, ?, ?, ?)`,
			first.ID, c.ID, first.Hash, first.CreateTime.Unix(), unixOrZero(first.ExpireTime))
		return err
	})
}

// clientSelect reads a client with its organisation's parent.
const clientSelect = `SELECT c.client_id, c.name, c.organisation_number, c.client_system_id, c.status,
	c.create_time, COALESCE(o.parent_number, ''), c.admin_role, c.admin_tenant, COALESCE(x.settings, '') FROM clients c
	LEFT JOIN organisations o ON o.organisation_number = c.organisation_number
	LEFT JOIN client_oidc x ON x.client_id = c.client_id`

// scanner is a row to scan.
type scanner = store.Scanner

func scanClient(row scanner) (Client, error) {
	var (
		c       Client
		status  int32
		created int64
		role    int32
		oidc    string
	)
	if err := row.Scan(&c.ID, &c.Name, &c.OrganisationNumber, &c.ClientSystemID, &status, &created,
		&c.ParentOrganisationNumber, &role, &c.AdminTenant, &oidc); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Client{}, store.ErrNotFound
		}
		return Client{}, err
	}
	if oidc != "" {
		c.OIDC = new(OIDCSettings)
		if err := json.Unmarshal([]byte(oidc), c.OIDC); err != nil {
			return Client{}, fmt.Errorf("client %s: oidc settings: %w", c.ID, err)
		}
	}
	c.Status, c.AdminRole = registryv1.ClientStatus(status), registryv1.Role(role)
	c.CreateTime = time.Unix(created, 0).UTC()
	return c, nil
}

func (s *sqlStore) ListClients(ctx context.Context, orgnr string, p Page) ([]Client, error) {
	name, id, _ := strings.Cut(p.After, "\x00")
	return store.Query(ctx, s.db, clientSelect+` WHERE (? = '' OR c.organisation_number = ?) AND (c.name, c.client_id) > (?, ?)
		ORDER BY c.name, c.client_id LIMIT ?`, []any{orgnr, orgnr, name, id, p.Limit}, scanClient)
}

func (s *sqlStore) GetClient(ctx context.Context, id string) (Client, error) {
	c, err := scanClient(s.db.Read.QueryRowContext(ctx, clientSelect+` WHERE c.client_id = ?`, id))
	if err != nil {
		return Client{}, err
	}
	if c.Grants, err = s.ListGrants(ctx, id, ""); err != nil {
		return Client{}, err
	}
	for _, g := range c.Grants {
		if g.Status == registryv1.GrantStatus_GRANT_STATUS_APPROVED {
			c.Scopes = append(c.Scopes, g.Scope)
		}
	}
	return c, nil
}

func (s *sqlStore) ListSecrets(ctx context.Context, clientID string) ([]Secret, error) {
	return store.Query(ctx, s.db, secretSelect+` WHERE client_id = ? ORDER BY create_time, id`, []any{clientID}, scanSecret)
}

const secretSelect = `SELECT id, hash, create_time, expire_time FROM client_secrets`

func scanSecret(sc scanner) (Secret, error) {
	var (
		sec             Secret
		created, expire int64
	)
	err := sc.Scan(&sec.ID, &sec.Hash, &created, &expire)
	sec.CreateTime = time.Unix(created, 0).UTC()
	if expire != 0 {
		sec.ExpireTime = time.Unix(expire, 0).UTC()
	}
	return sec, err
}

func (s *sqlStore) AddKey(ctx context.Context, clientID string, k Key) error {
	return s.insert(ctx, change{"client_key", clientID + " " + k.KID, nil, k}, `INSERT INTO client_keys (client_id, kid, kty, alg, jwk, create_time) VALUES (?, ?, ?, ?, ?, ?)`,
		clientID, k.KID, k.Kty, k.Alg, k.JWK, k.CreateTime.Unix())
}

func (s *sqlStore) ListKeys(ctx context.Context, clientID string) ([]Key, error) {
	return store.Query(ctx, s.db, `SELECT kid, kty, alg, jwk, create_time FROM client_keys WHERE client_id = ? ORDER BY create_time, kid`,
		[]any{clientID}, func(sc scanner) (Key, error) {
			var k Key
			var created int64
			err := sc.Scan(&k.KID, &k.Kty, &k.Alg, &k.JWK, &created)
			k.CreateTime = time.Unix(created, 0).UTC()
			return k, err
		})
}

func (s *sqlStore) RemoveKey(ctx context.Context, clientID, kid string) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM client_keys WHERE client_id = ? AND kid = ?`, clientID, kid)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return errors.Join(err, store.ErrNotFound)
		}
		return recordAudit(ctx, tx, change{"client_key", clientID + " " + kid, map[string]string{"kid": kid}, nil})
	})
}

func (s *sqlStore) UseAssertion(ctx context.Context, clientID, jti string, keep, now time.Time) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM used_assertions WHERE expire_time < ?`, now.Unix()); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO used_assertions (client_id, jti, expire_time) VALUES (?, ?, ?)`,
			clientID, jti, keep.Unix())
		return uniqueViolation(err)
	})
}

func (s *sqlStore) ListAuditEvents(ctx context.Context, objectType, objectID string, beforeID int64, limit int) ([]AuditEvent, error) {
	return store.Query(ctx, s.db, `SELECT id, time_ms, actor_client_id, actor_role, action, object_type, object_id, before_json, after_json,
		korrelasjons_id FROM audit_events WHERE (? = '' OR object_type = ?) AND (? = '' OR object_id = ?) AND (? <= 0 OR id < ?)
		ORDER BY id DESC LIMIT ?`, []any{objectType, objectType, objectID, objectID, beforeID, beforeID, limit},
		func(sc scanner) (AuditEvent, error) {
			var e AuditEvent
			var ms int64
			err := sc.Scan(&e.ID, &ms, &e.ActorClientID, &e.ActorRole, &e.Action, &e.ObjectType, &e.ObjectID, &e.Before, &e.After, &e.KorrelasjonsID)
			e.Time = time.UnixMilli(ms).UTC()
			return e, err
		})
}

func (s *sqlStore) AddSecret(ctx context.Context, clientID string, sec Secret) error {
	return s.insert(ctx, change{"client_secret", sec.ID, nil, secretMetadata(sec)}, `INSERT INTO client_secrets (id, client_id, hash, create_time, expire_time) VALUES (?, ?, ?, ?, ?)`,
		sec.ID, clientID, sec.Hash, sec.CreateTime.Unix(), unixOrZero(sec.ExpireTime))
}

func (s *sqlStore) UpdateSecret(ctx context.Context, clientID, secretID string, fn func(Secret, []Secret) (Secret, error)) (Secret, error) {
	var out Secret
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		// The decision is taken on all of the client's secrets (is another one left working?), so the
		// client's row is locked: it serialises the client's secret updates, and an AddSecret (whose
		// foreign key check shares that row) ends first.
		if err := s.lockClient(ctx, tx, clientID); err != nil {
			return err
		}
		rows, err := tx.QueryContext(ctx, secretSelect+` WHERE client_id = ?`, clientID)
		if err != nil {
			return err
		}
		var all []Secret
		for rows.Next() {
			sec, err := scanSecret(rows)
			if err != nil {
				rows.Close()
				return err
			}
			all = append(all, sec)
		}
		rows.Close()
		i := slices.IndexFunc(all, func(sec Secret) bool { return sec.ID == secretID })
		if i < 0 {
			return store.ErrNotFound
		}
		if out, err = fn(all[i], all); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `UPDATE client_secrets SET expire_time = ? WHERE id = ? AND client_id = ?`,
			unixOrZero(out.ExpireTime), secretID, clientID); err != nil {
			return err
		}
		return recordAudit(ctx, tx, change{"client_secret", secretID, secretMetadata(all[i]), secretMetadata(out)})
	})
	return out, err
}

func (s *sqlStore) UpdateClient(ctx context.Context, id string, fn func(Client) (Client, error)) (Client, error) {
	var out Client
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		old, err := scanClient(tx.QueryRowContext(ctx, clientSelect+` WHERE c.client_id = ?`+s.db.ForUpdate("c"), id))
		if err != nil {
			return err
		}
		if out, err = fn(old); err != nil {
			return err
		}
		if _, err = tx.ExecContext(ctx, `UPDATE clients SET name = ?, status = ? WHERE client_id = ?`, out.Name, int32(out.Status), id); err != nil {
			return err
		}
		if err := putOIDC(ctx, tx, id, old.OIDC, out.OIDC); err != nil {
			return err
		}
		return recordAudit(ctx, tx, change{"client", id, old, out})
	})
	if err != nil {
		return Client{}, err
	}
	return s.GetClient(ctx, id)
}

// putOIDC stores a client's OpenID Connect settings when they changed from old to out (nil: none).
func putOIDC(ctx context.Context, tx *sql.Tx, clientID string, old, out *OIDCSettings) error {
	before, err := json.Marshal(old)
	if err != nil {
		return err
	}
	after, err := json.Marshal(out)
	if err != nil || string(before) == string(after) {
		return err
	}
	if out == nil {
		_, err = tx.ExecContext(ctx, `DELETE FROM client_oidc WHERE client_id = ?`, clientID)
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO client_oidc (client_id, settings) VALUES (?, ?)
		ON CONFLICT (client_id) DO UPDATE SET settings = excluded.settings`, clientID, string(after))
	return err
}

func (s *sqlStore) DeleteClient(ctx context.Context, id string) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		old, err := scanClient(tx.QueryRowContext(ctx, clientSelect+` WHERE c.client_id = ?`+s.db.ForUpdate("c"), id))
		if err != nil {
			return err
		}
		for _, q := range []string{`DELETE FROM grants WHERE client_id = ?`, `DELETE FROM client_keys WHERE client_id = ?`, `DELETE FROM client_oidc WHERE client_id = ?`,
			`DELETE FROM client_secrets WHERE client_id = ?`, `DELETE FROM clients WHERE client_id = ?`} {
			if _, err := tx.ExecContext(ctx, q, id); err != nil {
				return err
			}
		}
		return recordAudit(ctx, tx, change{"client", id, old, nil})
	})
}

func (s *sqlStore) CreateAPIResource(ctx context.Context, api APIResource) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO api_resources (id, audience, name, create_time) VALUES (?, ?, ?, ?)`,
			api.ID, api.Audience, api.Name, api.CreateTime.Unix()); err != nil {
			return uniqueViolation(err)
		}
		for _, sc := range api.Scopes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO api_scopes (scope, api_id) VALUES (?, ?)`, sc, api.ID); err != nil {
				return uniqueViolation(err)
			}
		}
		return recordAudit(ctx, tx, change{"api_resource", api.ID, nil, api})
	})
}

const apiSelect = `SELECT a.id, a.audience, a.name, a.create_time,
	COALESCE((SELECT string_agg(scope, ' ' ORDER BY scope) FROM api_scopes WHERE api_id = a.id), '')
	FROM api_resources a`

func scanAPI(sc scanner) (APIResource, error) {
	var api APIResource
	var created int64
	var scopes string
	err := sc.Scan(&api.ID, &api.Audience, &api.Name, &created, &scopes)
	if errors.Is(err, sql.ErrNoRows) {
		return APIResource{}, store.ErrNotFound
	}
	api.CreateTime, api.Scopes = time.Unix(created, 0).UTC(), strings.Fields(scopes)
	return api, err
}

func (s *sqlStore) APIByAudience(ctx context.Context, audience string) (APIResource, error) {
	return scanAPI(s.db.Read.QueryRowContext(ctx, apiSelect+` WHERE a.audience = ?`, audience))
}

func (s *sqlStore) MoveAPIScope(ctx context.Context, scope, apiID string) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		var old string
		if err := tx.QueryRowContext(ctx, `SELECT api_id FROM api_scopes WHERE scope = ?`+s.db.ForUpdate(), scope).Scan(&old); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return store.ErrNotFound
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE api_scopes SET api_id = ? WHERE scope = ?`, apiID, scope); err != nil {
			return err
		}
		return recordAudit(ctx, tx, change{"api_scope", scope, map[string]string{"api_id": old, "scope": scope},
			map[string]string{"api_id": apiID, "scope": scope}})
	})
}

func (s *sqlStore) Audit(ctx context.Context, c change) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error { return recordAudit(ctx, tx, c) })
}

func (s *sqlStore) GetAPIResource(ctx context.Context, id string) (APIResource, error) {
	return scanAPI(s.db.Read.QueryRowContext(ctx, apiSelect+` WHERE a.id = ?`, id))
}

func (s *sqlStore) ListAPIResources(ctx context.Context, p Page) ([]APIResource, error) {
	return store.Query(ctx, s.db, apiSelect+` WHERE a.audience > ? ORDER BY a.audience LIMIT ?`, []any{p.After, p.Limit}, scanAPI)
}

func (s *sqlStore) AddAPIScope(ctx context.Context, apiID, scope string) error {
	return s.insert(ctx, change{"api_scope", scope, nil, map[string]string{"api_id": apiID, "scope": scope}},
		`INSERT INTO api_scopes (scope, api_id) VALUES (?, ?)`, scope, apiID)
}

func (s *sqlStore) APIOfScope(ctx context.Context, scope string) (string, error) {
	var id string
	err := s.db.Read.QueryRowContext(ctx, `SELECT api_id FROM api_scopes WHERE scope = ?`, scope).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", store.ErrNotFound
	}
	return id, err
}

func (s *sqlStore) UpdateGrant(ctx context.Context, clientID, scope string, fn func(Grant, bool) (Grant, error)) (Grant, error) {
	var out Grant
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		// The grant may not be there yet, so the client's row is what is locked.
		if err := s.lockClient(ctx, tx, clientID); err != nil {
			return err
		}
		old, err := scanGrant(tx.QueryRowContext(ctx, grantSelect+` WHERE client_id = ? AND scope = ?`, clientID, scope))
		exists := err == nil
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if out, err = fn(old, exists); err != nil {
			return err
		}
		if err := putGrant(ctx, tx, out); err != nil {
			return err
		}
		var before any
		if exists {
			before = old
		}
		return recordAudit(ctx, tx, change{"grant", clientID + " " + scope, before, out})
	})
	return out, err
}

// lockClient locks a client's row until tx ends (on PostgreSQL; see store.DB.ForUpdate), for the
// read-modify-writes of what the client owns. A client that is not there locks nothing.
func (s *sqlStore) lockClient(ctx context.Context, tx *sql.Tx, clientID string) error {
	_, err := tx.ExecContext(ctx, `SELECT client_id FROM clients WHERE client_id = ?`+s.db.ForUpdate(), clientID)
	return err
}

const grantSelect = `SELECT client_id, scope, status, update_time FROM grants`

func scanGrant(sc scanner) (Grant, error) {
	var g Grant
	var status int32
	var updated int64
	err := sc.Scan(&g.ClientID, &g.Scope, &status, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Grant{}, store.ErrNotFound
	}
	g.Status, g.UpdateTime = registryv1.GrantStatus(status), time.Unix(updated, 0).UTC()
	return g, err
}

func putGrant(ctx context.Context, tx *sql.Tx, g Grant) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO grants (client_id, scope, status, update_time) VALUES (?, ?, ?, ?)
		ON CONFLICT (client_id, scope) DO UPDATE SET status = excluded.status, update_time = excluded.update_time`,
		g.ClientID, g.Scope, int32(g.Status), g.UpdateTime.Unix())
	return err
}

func (s *sqlStore) ListGrants(ctx context.Context, clientID, apiID string) ([]Grant, error) {
	query, args := grantsQuery(clientID, apiID)
	return store.Query(ctx, s.db, query, args, scanGrant)
}

// grantsQuery is ListGrants' query. Each case is written out so that the database answers it from an
// index ("? = ” OR client_id = ?" it answers by scanning every grant, on the path of every GetClient).
func grantsQuery(clientID, apiID string) (string, []any) {
	const ofAPI = `scope IN (SELECT scope FROM api_scopes WHERE api_id = ?)`
	switch {
	case clientID != "" && apiID != "":
		return grantSelect + ` WHERE client_id = ? AND ` + ofAPI + ` ORDER BY client_id, scope`, []any{clientID, apiID}
	case clientID != "":
		return grantSelect + ` WHERE client_id = ? ORDER BY client_id, scope`, []any{clientID}
	case apiID != "":
		return grantSelect + ` WHERE ` + ofAPI + ` ORDER BY client_id, scope`, []any{apiID}
	}
	return grantSelect + ` ORDER BY client_id, scope`, nil
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
