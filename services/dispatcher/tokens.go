package dispatcher

import (
	"context"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/scope"
)

// SystemTokens are sent on behalf of PVK.
const (
	senderClientID   = "hnsec-pvk"
	senderClientName = "Personvernkomponenten"
)

// tokenCache holds a SystemToken per subscriber (the audience), minted by the STS and used until a quarter
// of its lifetime is left.
type tokenCache struct {
	sts    stsv1.TokenServiceClient
	mu     sync.Mutex
	tokens map[string]cachedToken
	// minting lets concurrent callers share one IssueSystemToken call per audience.
	minting singleflight.Group
}

type cachedToken struct {
	token          string
	issued, expiry time.Time
}

func newTokenCache(sts stsv1.TokenServiceClient) *tokenCache {
	return &tokenCache{sts: sts, tokens: map[string]cachedToken{}}
}

// get returns a SystemToken for the audience with the replication scope.
func (c *tokenCache) get(ctx context.Context, audience string) (string, error) {
	now := time.Now()
	c.mu.Lock()
	t, ok := c.tokens[audience]
	c.mu.Unlock()
	if ok && t.expiry.Sub(now) > t.expiry.Sub(t.issued)/4 {
		return t.token, nil
	}
	tok, err, _ := c.minting.Do(audience, func() (any, error) {
		resp, err := c.sts.IssueSystemToken(ctx, &stsv1.IssueSystemTokenRequest{Audience: audience, Scopes: []string{scope.PVKReplication},
			ClientId: senderClientID, ClientName: senderClientName})
		if err != nil {
			return "", err
		}
		c.mu.Lock()
		c.tokens[audience] = cachedToken{token: resp.GetToken(), issued: now, expiry: resp.GetExpireTime().AsTime()}
		c.mu.Unlock()
		return resp.GetToken(), nil
	})
	return tok.(string), err
}
