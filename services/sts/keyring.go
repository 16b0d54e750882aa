package sts

import (
	"context"
	"time"

	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/secrets"
)

// keyRing holds the HS256 keys that sign and verify reference JWTs. HS256 keys are never published. The
// newest key signs; every key verifies. It is loaded from the store and survives restarts, and does not
// change while the process runs.
type keyRing struct {
	keys   []signingKey // newest first
	secret [][]byte     // the keys' secrets, same order, for verification
}

// loadKeyRing reads the ring, creating the first key when the store has none.
func loadKeyRing(ctx context.Context, st Store) (*keyRing, error) {
	keys, err := st.Keys(ctx)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		k := signingKey{ID: guid.New(), Alg: "HS256", Secret: secrets.NewKey(), CreateTime: time.Now().UTC()}
		if err := st.AddKey(ctx, k); err != nil {
			return nil, err
		}
		keys = []signingKey{k}
	}
	r := &keyRing{keys: keys}
	for _, k := range keys {
		r.secret = append(r.secret, k.Secret)
	}
	return r, nil
}

// signing returns the key that signs new tokens.
func (r *keyRing) signing() signingKey {
	return r.keys[0]
}

// verification returns every key's secret, newest first.
func (r *keyRing) verification() [][]byte {
	return r.secret
}
