package introspection

import (
	"crypto/sha256"
	"sync"
	"time"

	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
)

// tokenKey is the SHA-256 of a token: the cache never holds the token itself.
type tokenKey [sha256.Size]byte

// cache holds active answers until their token expires, indexed so that a revoked token or a changed
// client drops at once. An answer whose lookup was under way when a drop or a flush happened is not
// stored (see generation), so a lookup that read the token before its revocation cannot put it back.
type cache struct {
	mu       sync.RWMutex
	byToken  map[tokenKey]entry
	byClient map[string]map[tokenKey]struct{}
	byJTI    map[string]tokenKey
	// gen counts drops and flushes.
	gen uint64
}

type entry struct {
	resp    *introspectionv1.IntrospectResponse
	expires time.Time
}

func newCache() *cache {
	return &cache{byToken: map[tokenKey]entry{}, byClient: map[string]map[tokenKey]struct{}{}, byJTI: map[string]tokenKey{}}
}

// get returns the cached answer for key while it is valid.
func (c *cache) get(key tokenKey, now time.Time) *introspectionv1.IntrospectResponse {
	c.mu.RLock()
	e, ok := c.byToken[key]
	c.mu.RUnlock()
	if !ok || !now.Before(e.expires) {
		return nil
	}
	return e.resp
}

// generation is the count of drops and flushes so far: take it before a lookup and give it to put.
func (c *cache) generation() uint64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.gen
}

// put stores an active answer until expires, unless something was dropped or flushed since generation
// gen: the answer's token may have been revoked, or its client changed, while it was looked up.
func (c *cache) put(key tokenKey, resp *introspectionv1.IntrospectResponse, expires time.Time, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.byToken[key] = entry{resp: resp, expires: expires}
	keys := c.byClient[resp.GetClientId()]
	if keys == nil {
		keys = map[tokenKey]struct{}{}
		c.byClient[resp.GetClientId()] = keys
	}
	keys[key] = struct{}{}
	c.byJTI[resp.GetJti()] = key
}

// dropJTI forgets the answer for the token with this jti.
func (c *cache) dropJTI(jti string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if key, ok := c.byJTI[jti]; ok {
		c.removeLocked(key)
	}
}

// dropClient forgets every answer for the client's tokens.
func (c *cache) dropClient(clientID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	for key := range c.byClient[clientID] {
		c.removeLocked(key)
	}
}

// flush forgets every answer (revocations may have been missed).
func (c *cache) flush() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.byToken)
	clear(c.byClient)
	clear(c.byJTI)
}

// sweep forgets expired answers.
func (c *cache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, e := range c.byToken {
		if !now.Before(e.expires) {
			c.removeLocked(key)
		}
	}
}

func (c *cache) removeLocked(key tokenKey) {
	e, ok := c.byToken[key]
	if !ok {
		return
	}
	delete(c.byToken, key)
	delete(c.byJTI, e.resp.GetJti())
	if keys := c.byClient[e.resp.GetClientId()]; keys != nil {
		delete(keys, key)
		if len(keys) == 0 {
			delete(c.byClient, e.resp.GetClientId())
		}
	}
}
