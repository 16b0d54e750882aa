package standin

import (
	"net/http"
	"net/url"
	"regexp"
	"time"
)

// pkceVerifier is RFC 7636's code_verifier: 43–128 unreserved characters.
var pkceVerifier = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// tokenError is an RFC 6749 5.2 error.
type tokenError struct {
	status            int
	code, description string
}

// Errors the token endpoint answers.
var (
	errCodeInvalid    = tokenError{http.StatusBadRequest, "invalid_grant", "authorization code is unknown, expired or already used"}
	errRedirectURI    = tokenError{http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request"}
	errVerifierNeeded = tokenError{http.StatusBadRequest, "invalid_request", "code_verifier is required"}
	errVerifierWrong  = tokenError{http.StatusBadRequest, "invalid_grant", "code_verifier does not match code_challenge"}
)

func (s *IDPorten) writeTokenError(w http.ResponseWriter, e tokenError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="idporten-standin"`)
	}
	writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.description})
}

// authenticateClient checks client_secret_basic or client_secret_post (exactly one).
func (s *IDPorten) authenticateClient(r *http.Request) (Client, *tokenError) {
	id, secret, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		secret, err2 = url.QueryUnescape(secret)
		if err1 != nil || err2 != nil || r.PostForm.Has("client_secret") {
			return Client{}, &tokenError{http.StatusBadRequest, "invalid_request", "use one client authentication method"}
		}
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	c, ok := s.clients[id]
	if !ok || secret == "" || !equal(secret, c.Secret) {
		return Client{}, &tokenError{http.StatusUnauthorized, "invalid_client", "client authentication failed"}
	}
	return c, nil
}

// parseForm reads a bounded form body.
func parseForm(w http.ResponseWriter, r *http.Request) *tokenError {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return &tokenError{http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded"}
	}
	return nil
}

// clientRequest reads a client's form request and authenticates the client, answering the error itself
// when either fails.
func (s *IDPorten) clientRequest(w http.ResponseWriter, r *http.Request) (Client, bool) {
	e := parseForm(w, r)
	var c Client
	if e == nil {
		c, e = s.authenticateClient(r)
	}
	if e != nil {
		s.writeTokenError(w, *e)
		return Client{}, false
	}
	return c, true
}

// token is the token endpoint: the authorization_code grant with PKCE S256.
func (s *IDPorten) token(w http.ResponseWriter, r *http.Request) {
	c, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	f := r.PostForm
	switch {
	case f.Get("grant_type") != "authorization_code":
		s.writeTokenError(w, tokenError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code"})
		return
	case f.Get("code") == "":
		s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "code is required"})
		return
	case f.Get("code_verifier") == "":
		s.writeTokenError(w, errVerifierNeeded)
		return
	}
	now := s.cfg.Now()
	// The code is spent by its first use, whatever the outcome.
	s.mu.Lock()
	g := s.codes[f.Get("code")]
	delete(s.codes, f.Get("code"))
	s.mu.Unlock()
	switch {
	case g == nil || now.After(g.expires) || g.req.clientID != c.ID:
		s.writeTokenError(w, errCodeInvalid)
		return
	case f.Get("redirect_uri") != g.req.redirectURI:
		s.writeTokenError(w, errRedirectURI)
		return
	case !pkceVerifier.MatchString(f.Get("code_verifier")) || !equal(s256(f.Get("code_verifier")), g.req.challenge):
		s.writeTokenError(w, errVerifierWrong)
		return
	}
	at := randomToken(32)
	idt, err := s.idToken(g, at, now)
	if err != nil {
		s.cfg.Log.Error("idporten stand-in: sign ID token", "err", err)
		s.writeTokenError(w, tokenError{http.StatusInternalServerError, "server_error", "the ID token could not be signed"})
		return
	}
	s.mu.Lock()
	prune(s.tokens, now, func(t *accessToken) time.Time { return t.expires })
	s.tokens[at] = &accessToken{clientID: c.ID, expires: now.Add(tokenLifetime)}
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]any{"access_token": at, "id_token": idt, "token_type": "Bearer",
		"expires_in": int(tokenLifetime.Seconds()), "scope": g.req.scope})
}

// revoke is RFC 7009: the client's own access token stops working; 200 for any token.
func (s *IDPorten) revoke(w http.ResponseWriter, r *http.Request) {
	c, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	if r.PostForm.Get("token") == "" {
		s.writeTokenError(w, tokenError{http.StatusBadRequest, "invalid_request", "token is required"})
		return
	}
	s.mu.Lock()
	if t := s.tokens[r.PostForm.Get("token")]; t != nil && t.clientID == c.ID {
		delete(s.tokens, r.PostForm.Get("token"))
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// TokenActive reports whether an access token the stand-in issued is still active (not expired or
// revoked); for tests and a later userinfo endpoint.
func (s *IDPorten) TokenActive(token string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tokens[token]
	return t != nil && s.cfg.Now().Before(t.expires)
}
