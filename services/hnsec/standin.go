package main

import (
	"net/http"
	"strings"

	"github.com/hnsec/hnsec/pkg/publicurl"
	"github.com/hnsec/hnsec/services/standin"
)

// standinEnabled reports whether this process serves the dev-only stand-ins: only with --dev or
// --standin-idp, so production (neither flag) cannot reach them.
func (c *serveConfig) standinEnabled() bool { return c.Dev || c.Standin.IDP }

// mountStandin puts the ID-porten stand-in in front of the REST gateway h when standinEnabled: requests
// under its issuer path go to it, everything else to h untouched.
func (a *app) mountStandin(h http.Handler) (http.Handler, error) {
	if !a.cfg.standinEnabled() {
		return h, nil
	}
	base := publicurl.Base(a.cfg.STS.Issuer, a.cfg.STS.PublicURL)
	idp, _, err := standin.NewDevIDPorten(a.cfg.DataDir, base, a.cfg.Standin, a.log.With("service", "standin"))
	if err != nil {
		return nil, err
	}
	prefix := idp.Prefix() + "/"
	a.log.Info("ID-porten stand-in serving (dev only)", "issuer", base+standin.IssuerPath)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, prefix) {
			idp.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	}), nil
}
