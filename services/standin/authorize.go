package standin

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// authRequest is a validated authorization request.
type authRequest struct {
	clientID, redirectURI, state, nonce, scope string
	challenge                                  string
	acr                                        string // wanted level: from acr_values, else substantial
	prompt                                     string
}

// authError is an error the authorization endpoint redirects to the client with.
type authError struct{ code, description string }

// pkceChallenge is a base64url SHA-256: 43 characters.
var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// Errors the authorization endpoint answers (RFC 6749 4.1.2.1, RFC 7636 4.4.1).
var (
	errPKCEMissing = authError{"invalid_request", "code_challenge is required: PKCE with S256"}
	errPKCEMethod  = authError{"invalid_request", "code_challenge_method must be S256"}
	errUnknownPid  = authError{"access_denied", "login_hint names no test citizen"}
)

// validateAuthorize checks an authorization request. A bad client_id or redirect_uri is answered with an
// HTML page (badPage set), never a redirect; everything else with an error for the client.
func (s *IDPorten) validateAuthorize(q url.Values) (req authRequest, badPage string, aerr *authError) {
	req = authRequest{clientID: q.Get("client_id"), redirectURI: q.Get("redirect_uri"), state: q.Get("state"),
		nonce: q.Get("nonce"), scope: q.Get("scope"), challenge: q.Get("code_challenge"), prompt: q.Get("prompt")}
	c, ok := s.clients[req.clientID]
	if !ok {
		return req, "Ukjent klient (client_id).", nil
	}
	if !slices.Contains(c.RedirectURIs, req.redirectURI) {
		return req, "redirect_uri er ikke registrert for klienten.", nil
	}
	fail := func(code, desc string) (authRequest, string, *authError) { return req, "", &authError{code, desc} }
	switch {
	case q.Get("response_type") != "code":
		return fail("unsupported_response_type", "response_type must be code")
	case q.Get("response_mode") != "" && q.Get("response_mode") != "query":
		return fail("invalid_request", "response_mode must be query")
	case !slices.Contains(strings.Fields(req.scope), "openid"):
		return fail("invalid_scope", "scope must contain openid")
	case q.Get("request_uri") != "" || q.Get("request") != "":
		return fail("request_not_supported", "request and request_uri are not supported")
	case req.challenge == "":
		e := errPKCEMissing
		return req, "", &e
	case q.Get("code_challenge_method") != "S256":
		e := errPKCEMethod
		return req, "", &e
	case !pkceChallenge.MatchString(req.challenge):
		return fail("invalid_request", "code_challenge must be a base64url SHA-256 (43 characters)")
	case len(req.state) > 1000 || len(req.nonce) > 1000:
		return fail("invalid_request", "state and nonce must be at most 1000 characters")
	}
	switch p := req.prompt; p {
	case "", "none", "login":
	default:
		return fail("invalid_request", "prompt must be none or login")
	}
	req.acr = ACRSubstantial
	if v := strings.Fields(q.Get("acr_values")); len(v) > 0 {
		if v[0] != ACRSubstantial && v[0] != ACRHigh {
			return fail("invalid_request", "acr_values must be "+ACRSubstantial+" or "+ACRHigh)
		}
		req.acr = v[0]
	}
	return req, "", nil
}

// authorize is the authorization endpoint: headless login with login_hint=testid:<pid>[_<acr>], single
// sign-on from the session cookie, else the login page.
func (s *IDPorten) authorize(w http.ResponseWriter, r *http.Request) {
	req, badPage, aerr := s.validateAuthorize(r.URL.Query())
	switch {
	case badPage != "":
		s.cfg.Log.Info("idporten stand-in: authorization request refused with a page", "client_id", req.clientID)
		s.renderError(w, http.StatusBadRequest, badPage)
		return
	case aerr != nil:
		s.redirectError(w, r, req, *aerr)
		return
	}
	now := s.cfg.Now()
	if hint, ok := strings.CutPrefix(r.URL.Query().Get("login_hint"), "testid:"); ok {
		pid, acr, aerr := s.parseTestID(hint, req.acr)
		if aerr != nil {
			s.redirectError(w, r, req, *aerr)
			return
		}
		sess := s.newSession(w, r, pid, acr, now)
		s.redirectCode(w, r, req, sess, now)
		return
	}
	if req.prompt != "login" {
		if sess := s.currentSession(r, now); sess != nil && (sess.acr == ACRHigh || req.acr == ACRSubstantial) {
			s.redirectCode(w, r, req, sess, now)
			return
		}
	}
	if req.prompt == "none" {
		s.redirectError(w, r, req, authError{"login_required", "no session at the identity provider"})
		return
	}
	s.renderLogin(w, r, req, now)
}

// parseTestID reads a TestID login hint: <pid> or <pid>_<acr>; the hint's level wins over acr_values.
func (s *IDPorten) parseTestID(hint, acr string) (string, string, *authError) {
	pid, level, found := strings.Cut(hint, "_")
	if found {
		if level != ACRSubstantial && level != ACRHigh {
			return "", "", &authError{"invalid_request", "login_hint level must be " + ACRSubstantial + " or " + ACRHigh}
		}
		acr = level
	}
	if _, err := s.cfg.Population.Citizen(pid); err != nil {
		e := errUnknownPid
		return "", "", &e
	}
	return pid, acr, nil
}

// redirectCode issues a code for the session's login and sends the browser back to the client.
func (s *IDPorten) redirectCode(w http.ResponseWriter, r *http.Request, req authRequest, sess *session, now time.Time) {
	code := randomToken(32)
	s.mu.Lock()
	prune(s.codes, now, func(g *grant) time.Time { return g.expires })
	s.codes[code] = &grant{req: req, pid: sess.pid, acr: sess.acr, sid: sess.sid, authTime: sess.authTime, expires: now.Add(codeLifetime)}
	s.mu.Unlock()
	s.cfg.Log.Info("idporten stand-in: login", "client_id", req.clientID, "acr", sess.acr)
	s.redirect(w, r, req, url.Values{"code": {code}})
}

// redirectError sends an authorization error to the client (RFC 6749 4.1.2.1 with RFC 9207's iss).
func (s *IDPorten) redirectError(w http.ResponseWriter, r *http.Request, req authRequest, e authError) {
	s.cfg.Log.Info("idporten stand-in: authorization refused", "client_id", req.clientID, "error", e.code)
	s.redirect(w, r, req, url.Values{"error": {e.code}, "error_description": {e.description}})
}

func (s *IDPorten) redirect(w http.ResponseWriter, r *http.Request, req authRequest, v url.Values) {
	if req.state != "" {
		v.Set("state", req.state)
	}
	v.Set("iss", s.cfg.Issuer)
	u, _ := url.Parse(req.redirectURI) // registered, so it parses
	q := u.Query()
	for k, vs := range v {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}

// prune drops expired entries of a map once it has grown.
func prune[T any](m map[string]T, now time.Time, expires func(T) time.Time) {
	if len(m) < 256 {
		return
	}
	for k, v := range m {
		if now.After(expires(v)) {
			delete(m, k)
		}
	}
}
