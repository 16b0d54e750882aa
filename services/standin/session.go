package standin

import (
	"net/http"
	"time"
)

const (
	sessionCookie = "idporten-standin-session"
	csrfCookie    = "idporten-standin-csrf"
)

// newSession logs the browser in (a new sid, a session cookie) and returns the session.
func (s *IDPorten) newSession(w http.ResponseWriter, _ *http.Request, pid, acr string, now time.Time) *session {
	id := randomToken(32)
	sess := &session{sid: randomToken(16), pid: pid, acr: acr, authTime: now, expires: now.Add(sessionLifetime)}
	s.mu.Lock()
	prune(s.sessions, now, func(x *session) time.Time { return x.expires })
	s.sessions[id] = sess
	s.mu.Unlock()
	http.SetCookie(w, s.cookie(sessionCookie, id, http.SameSiteLaxMode, int(sessionLifetime.Seconds())))
	return sess
}

// currentSession is the browser's live session, if any.
func (s *IDPorten) currentSession(r *http.Request, now time.Time) *session {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.sessions[c.Value]
	if sess == nil || now.After(sess.expires) {
		return nil
	}
	return sess
}

// endSessions ends every session with sid (or the browser's own when sid is empty) and clears the cookie.
func (s *IDPorten) endSessions(w http.ResponseWriter, r *http.Request, sid string) {
	s.mu.Lock()
	if c, err := r.Cookie(sessionCookie); err == nil && sid == "" {
		delete(s.sessions, c.Value)
	}
	for k, v := range s.sessions {
		if sid != "" && v.sid == sid {
			delete(s.sessions, k)
		}
	}
	s.mu.Unlock()
	http.SetCookie(w, s.cookie(sessionCookie, "", http.SameSiteLaxMode, -1))
}

// cookie is one of the stand-in's cookies: host-only, under the issuer's path, HttpOnly, Secure on https.
func (s *IDPorten) cookie(name, value string, same http.SameSite, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: s.prefix + "/", HttpOnly: true, SameSite: same,
		Secure: len(s.cfg.Issuer) > 8 && s.cfg.Issuer[:8] == "https://", MaxAge: maxAge}
}
