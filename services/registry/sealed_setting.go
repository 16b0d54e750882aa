package registry

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/hnsec/hnsec/pkg/seal"
)

// sealedSuffix names the settings_kv row that holds a setting sealed under the key-encryption key.
const sealedSuffix = ".sealed"

// sealedSetting returns the named secret setting (the key of the secret hash), kept in settings_kv under
// name+".sealed", sealed under the key-encryption key and bound to its name. A value an older version
// stored in the clear under name is sealed and its clear row deleted, in one transaction, on the first
// start; a missing value is created. When several processes start at once, the first sealed row wins and
// every process uses it.
func (s *sqlStore) sealedSetting(ctx context.Context, sealer *seal.Sealer, name string, create func() []byte) ([]byte, error) {
	sealedName, aad := name+sealedSuffix, []byte("registry/settings_kv/"+name)
	var value []byte
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		var sealed []byte
		err := tx.QueryRowContext(ctx, `SELECT value FROM settings_kv WHERE name = ?`, sealedName).Scan(&sealed)
		if !errors.Is(err, sql.ErrNoRows) {
			if err != nil {
				return err
			}
			value, err = sealer.Open(sealed, aad)
			return err
		}
		var plain []byte
		switch err := tx.QueryRowContext(ctx, `SELECT value FROM settings_kv WHERE name = ?`, name).Scan(&plain); {
		case errors.Is(err, sql.ErrNoRows):
			plain = create()
		case err != nil:
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO settings_kv (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`,
			sealedName, sealer.Seal(plain, aad)); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM settings_kv WHERE name = ?`, name); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT value FROM settings_kv WHERE name = ?`, sealedName).Scan(&sealed); err != nil {
			return err
		}
		value, err = sealer.Open(sealed, aad)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("setting %s: %w", name, err)
	}
	return value, nil
}
