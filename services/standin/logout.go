package standin

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"

	"github.com/go-jose/go-jose/v4"
)

// logout is the end-session endpoint (RP-initiated logout): id_token_hint names the client and the
// session (sid); the session ends and the browser goes to a registered post_logout_redirect_uri with
// state, or sees a "logged out" page.
func (s *IDPorten) logout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, http.StatusBadRequest, "Forespørselen kunne ikke leses.")
		return
	}
	var hint struct {
		Iss string `json:"iss"`
		Aud string `json:"aud"`
		Sid string `json:"sid"`
	}
	if h := r.Form.Get("id_token_hint"); h != "" {
		jws, err := jose.ParseSigned(h, []jose.SignatureAlgorithm{jose.RS256})
		var payload []byte
		if err == nil {
			payload, err = jws.Verify(s.key.Public())
		}
		if err != nil || json.Unmarshal(payload, &hint) != nil || hint.Iss != s.cfg.Issuer {
			s.renderError(w, http.StatusBadRequest, "id_token_hint er ikke et ID-token fra denne utstederen.")
			return
		}
	}
	s.endSessions(w, r, hint.Sid)
	target := r.Form.Get("post_logout_redirect_uri")
	c, known := s.clients[hint.Aud]
	if target == "" || !known || !slices.Contains(c.PostLogoutRedirectURIs, target) {
		s.render(w, http.StatusOK, "done", map[string]string{"Title": "Logget ut"})
		return
	}
	u, _ := url.Parse(target)
	if st := r.Form.Get("state"); st != "" {
		q := u.Query()
		q.Set("state", st)
		u.RawQuery = q.Encode()
	}
	http.Redirect(w, r, u.String(), http.StatusSeeOther)
}
