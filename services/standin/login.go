package standin

import (
	"embed"
	"html/template"
	"net/http"
	"time"
)

//go:embed templates/*.html
var templateFS embed.FS

// pages are the stand-in's pages: one base layout, one template per page.
var pages = map[string]*template.Template{
	"login": template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/login.html")),
	"error": template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/error.html")),
	"done":  template.Must(template.ParseFS(templateFS, "templates/layout.html", "templates/loggedout.html")),
}

// pending is an authorization request waiting for the login page; csrf is also in the browser's cookie.
type pending struct {
	req     authRequest
	csrf    string
	expires time.Time
}

// citizenOption is one test citizen on the login page.
type citizenOption struct {
	Pid, Name, Birthdate string
	Age                  int
}

type loginPage struct {
	Title, Action, Request, CSRF, Error, ACR string
	Citizens                                 []citizenOption
	ACRSubstantial, ACRHigh                  string
}

// renderLogin shows the login page for req: pick a test citizen and a level.
func (s *IDPorten) renderLogin(w http.ResponseWriter, r *http.Request, req authRequest, now time.Time) {
	id, csrf := randomToken(24), randomToken(32)
	s.mu.Lock()
	prune(s.pending, now, func(p *pending) time.Time { return p.expires })
	s.pending[id] = &pending{req: req, csrf: csrf, expires: now.Add(pendingLifetime)}
	s.mu.Unlock()
	http.SetCookie(w, s.cookie(csrfCookie, csrf, http.SameSiteStrictMode, int(pendingLifetime.Seconds())))
	s.renderLoginPage(w, http.StatusOK, id, csrf, req.acr, "", now)
}

func (s *IDPorten) renderLoginPage(w http.ResponseWriter, status int, id, csrf, acr, msg string, now time.Time) {
	page := loginPage{Title: "Logg inn med TestID", Action: s.prefix + "/login", Request: id, CSRF: csrf, Error: msg, ACR: acr,
		ACRSubstantial: ACRSubstantial, ACRHigh: ACRHigh}
	for _, c := range s.cfg.Population.Citizens {
		page.Citizens = append(page.Citizens, citizenOption{Pid: c.Pid, Name: c.Name(), Birthdate: c.Birthdate, Age: c.Age(now)})
	}
	s.render(w, status, "login", page)
}

// login takes the login form: CSRF checked against the cookie and the pending request, then the chosen
// citizen and level log in (or "Avbryt" refuses with access_denied).
func (s *IDPorten) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.renderError(w, http.StatusBadRequest, "Skjemaet kunne ikke leses.")
		return
	}
	now := s.cfg.Now()
	id, token := r.PostForm.Get("request"), r.PostForm.Get("csrf")
	cookie, err := r.Cookie(csrfCookie)
	s.mu.Lock()
	p := s.pending[id]
	s.mu.Unlock()
	if p == nil || now.After(p.expires) || err != nil || !equal(cookie.Value, p.csrf) || !equal(token, p.csrf) {
		s.renderError(w, http.StatusForbidden, "Innloggingen er utløpt eller skjemaet er ugyldig. Start innloggingen på nytt fra tjenesten.")
		return
	}
	take := func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
		http.SetCookie(w, s.cookie(csrfCookie, "", http.SameSiteStrictMode, -1))
	}
	if r.PostForm.Has("avbryt") {
		take()
		s.redirectError(w, r, p.req, authError{"access_denied", "the user cancelled the login"})
		return
	}
	pid, acr := r.PostForm.Get("pid"), r.PostForm.Get("acr")
	if _, err := s.cfg.Population.Citizen(pid); err != nil || acr != ACRSubstantial && acr != ACRHigh {
		s.renderLoginPage(w, http.StatusBadRequest, id, p.csrf, p.req.acr, "Velg en testperson og et sikkerhetsnivå.", now)
		return
	}
	take()
	sess := s.newSession(w, r, pid, acr, now)
	s.redirectCode(w, r, p.req, sess, now)
}

// renderError shows an error page (never a redirect: the client or redirect_uri may be the attacker's).
func (s *IDPorten) renderError(w http.ResponseWriter, status int, msg string) {
	s.render(w, status, "error", map[string]string{"Title": "Noe gikk galt", "Message": msg})
}

func (s *IDPorten) render(w http.ResponseWriter, status int, page string, data any) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	if err := pages[page].ExecuteTemplate(w, "layout", data); err != nil {
		s.cfg.Log.Error("idporten stand-in: render", "page", page, "err", err)
	}
}
