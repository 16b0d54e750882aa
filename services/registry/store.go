package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/store"
)

// migrations is the registry's schema, one statement batch per version.
var migrations = []string{`
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
}

// Organisation is a virksomhet that owns client configurations.
type Organisation struct {
	Number string
	Name   string
}

// ClientSystem is a vendor's system; client configurations are instances of it.
type ClientSystem struct {
	ID       string
	VendorID string
	Name     string
	Status   string
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
	// CreateClient stores c with its first secret.
	CreateClient(ctx context.Context, c Client, first Secret) error
	// GetClient returns the client; ErrNotFound when there is none.
	GetClient(ctx context.Context, id string) (Client, error)
	// ClientSecrets returns the client's secrets; ErrNotFound when the client does not exist.
	ClientSecrets(ctx context.Context, id string) (Client, []Secret, error)
	// UpdateClient applies fn to the stored client atomically and stores its result.
	UpdateClient(ctx context.Context, id string, fn func(Client) (Client, error)) (Client, error)
}

// sqlStore is Store on SQL.
type sqlStore struct{ db *store.DB }

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Setting(ctx context.Context, name string, create func() []byte) ([]byte, error) {
	var v []byte
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		err := tx.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = ?`, name).Scan(&v)
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		v = create()
		_, err = tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES (?, ?)`, name, v)
		return err
	})
	return v, err
}

func (s *sqlStore) CreateVendor(ctx context.Context, v Vendor) error {
	return s.insert(ctx, `INSERT INTO vendors (id, name, organisation_number, create_time) VALUES (?, ?, ?, ?)`,
		v.ID, v.Name, v.OrganisationNumber, time.Now().Unix())
}

func (s *sqlStore) CreateOrganisation(ctx context.Context, o Organisation) error {
	return s.insert(ctx, `INSERT INTO organisations (organisation_number, name, create_time) VALUES (?, ?, ?)`,
		o.Number, o.Name, time.Now().Unix())
}

func (s *sqlStore) CreateClientSystem(ctx context.Context, cs ClientSystem) error {
	return s.insert(ctx, `INSERT INTO client_systems (id, vendor_id, name, status, create_time) VALUES (?, ?, ?, ?, ?)`,
		cs.ID, cs.VendorID, cs.Name, cs.Status, time.Now().Unix())
}

func (s *sqlStore) insert(ctx context.Context, query string, args ...any) error {
	_, err := s.db.Write.ExecContext(ctx, query, args...)
	return uniqueViolation(err)
}

// uniqueViolation maps a unique-constraint failure to store.ErrAlreadyExists.
func uniqueViolation(err error) error {
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return fmt.Errorf("%w: %w", store.ErrAlreadyExists, err)
	}
	return err
}

func (s *sqlStore) CreateClient(ctx context.Context, c Client, first Secret) error {
	return s.db.Tx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO clients (client_id, name, organisation_number, client_system_id, status, scopes, create_time)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, c.ID, c.Name, c.OrganisationNumber, c.ClientSystemID, int32(c.Status),
			strings.Join(c.Scopes, " "), c.CreateTime.Unix())
		if err != nil {
			return uniqueViolation(err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO client_secrets (id, client_id, hash, create_time, expire_time) VALUES (?, ?, ?, ?, ?)`,
			first.ID, c.ID, first.Hash, first.CreateTime.Unix(), unixOrZero(first.ExpireTime))
		return err
	})
}

// clientSelect reads a client with its organisation's parent.
const clientSelect = `SELECT c.client_id, c.name, c.organisation_number, c.client_system_id, c.status, c.scopes,
	c.create_time, COALESCE(o.parent_number, '') FROM clients c
	LEFT JOIN organisations o ON o.organisation_number = c.organisation_number`

type scanner interface{ Scan(dest ...any) error }

func scanClient(row scanner) (Client, error) {
	var (
		c       Client
		status  int32
		scopes  string
		created int64
	)
	if err := row.Scan(&c.ID, &c.Name, &c.OrganisationNumber, &c.ClientSystemID, &status, &scopes, &created,
		&c.ParentOrganisationNumber); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Client{}, store.ErrNotFound
		}
		return Client{}, err
	}
	c.Status = registryv1.ClientStatus(status)
	c.Scopes = strings.Fields(scopes)
	c.CreateTime = time.Unix(created, 0).UTC()
	return c, nil
}

func (s *sqlStore) GetClient(ctx context.Context, id string) (Client, error) {
	return scanClient(s.db.Read.QueryRowContext(ctx, clientSelect+` WHERE c.client_id = ?`, id))
}

func (s *sqlStore) ClientSecrets(ctx context.Context, id string) (Client, []Secret, error) {
	c, err := s.GetClient(ctx, id)
	if err != nil {
		return Client{}, nil, err
	}
	rows, err := s.db.Read.QueryContext(ctx, `SELECT id, hash, create_time, expire_time FROM client_secrets WHERE client_id = ?`, id)
	if err != nil {
		return Client{}, nil, err
	}
	defer rows.Close()
	var out []Secret
	for rows.Next() {
		var (
			sec             Secret
			created, expire int64
		)
		if err := rows.Scan(&sec.ID, &sec.Hash, &created, &expire); err != nil {
			return Client{}, nil, err
		}
		sec.CreateTime = time.Unix(created, 0).UTC()
		if expire != 0 {
			sec.ExpireTime = time.Unix(expire, 0).UTC()
		}
		out = append(out, sec)
	}
	return c, out, rows.Err()
}

func (s *sqlStore) UpdateClient(ctx context.Context, id string, fn func(Client) (Client, error)) (Client, error) {
	var out Client
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		old, err := scanClient(tx.QueryRowContext(ctx, clientSelect+` WHERE c.client_id = ?`, id))
		if err != nil {
			return err
		}
		if out, err = fn(old); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, `UPDATE clients SET name = ?, status = ?, scopes = ? WHERE client_id = ?`,
			out.Name, int32(out.Status), strings.Join(out.Scopes, " "), id)
		return err
	})
	return out, err
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
