package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"

	"github.com/hnsec/hnsec/pkg/flagx"
	"github.com/hnsec/hnsec/services/standin"
)

// rpCallback is the redirect URI of the test's relying party (registered with --standin-idp-redirect-uri;
// nothing listens there: the tests read the redirect).
const rpCallback = "https://rp.test.example/callback"

// idportenRP is a relying party of the ID-porten stand-in driven by golang.org/x/oauth2 and go-oidc.
type idportenRP struct {
	t        *testing.T
	s        *testServer
	client   standin.DevClient
	pop      *standin.Population
	provider *oidc.Provider
	conf     oauth2.Config
	browser  *http.Client
}

func newIDPortenRP(t *testing.T, s *testServer) *idportenRP {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.cfg.DataDir, standin.DevClientFile))
	require.NoError(t, err)
	rp := &idportenRP{t: t, s: s}
	require.NoError(t, json.Unmarshal(b, &rp.client))
	require.Equal(t, s.base+"/idporten-standin", rp.client.Issuer)
	rp.pop, err = standin.LoadPopulation(filepath.Join(s.cfg.DataDir, standin.CitizensFile))
	require.NoError(t, err)
	rp.provider, err = oidc.NewProvider(context.Background(), rp.client.Issuer) // checks the issuer matches
	require.NoError(t, err)
	rp.conf = oauth2.Config{ClientID: rp.client.ClientID, ClientSecret: rp.client.ClientSecret, Endpoint: rp.provider.Endpoint(),
		RedirectURL: rpCallback, Scopes: []string{oidc.ScopeOpenID}}
	rp.browser = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return rp
}

// authorize sends the browser to the authorization endpoint and returns the redirect back to the RP.
func (rp *idportenRP) authorize(opts ...oauth2.AuthCodeOption) url.Values {
	rp.t.Helper()
	resp, err := rp.browser.Get(rp.conf.AuthCodeURL("state-0123456789", opts...))
	require.NoError(rp.t, err)
	resp.Body.Close()
	require.Equal(rp.t, http.StatusSeeOther, resp.StatusCode)
	loc, err := url.Parse(resp.Header.Get("Location"))
	require.NoError(rp.t, err)
	require.Equal(rp.t, rpCallback, loc.Scheme+"://"+loc.Host+loc.Path)
	q := loc.Query()
	require.Equal(rp.t, "state-0123456789", q.Get("state"))
	require.Equal(rp.t, rp.client.Issuer, q.Get("iss"), "RFC 9207")
	return q
}

// headless logs pid in at level acr ("" for the default) and returns the code and the PKCE verifier.
func (rp *idportenRP) headless(pid, acr, nonce string) (code, verifier string) {
	rp.t.Helper()
	hint := "testid:" + pid
	if acr != "" {
		hint += "_" + acr
	}
	verifier = oauth2.GenerateVerifier()
	q := rp.authorize(oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce), oauth2.SetAuthURLParam("login_hint", hint))
	require.Empty(rp.t, q.Get("error"), q.Get("error_description"))
	require.NotEmpty(rp.t, q.Get("code"))
	return q.Get("code"), verifier
}

// exchange redeems a code and verifies the ID token as an RP must.
func (rp *idportenRP) exchange(code, verifier, nonce string) (*oauth2.Token, map[string]any) {
	rp.t.Helper()
	tok, err := rp.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
	require.NoError(rp.t, err)
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.provider.Verifier(&oidc.Config{ClientID: rp.conf.ClientID}).Verify(context.Background(), raw)
	require.NoError(rp.t, err)
	require.Equal(rp.t, nonce, idt.Nonce)
	require.NoError(rp.t, idt.VerifyAccessToken(tok.AccessToken), "at_hash")
	var claims map[string]any
	require.NoError(rp.t, idt.Claims(&claims))
	return tok, claims
}

// requireTokenError checks an RFC 6749 error from the token endpoint.
func requireTokenError(t *testing.T, err error, code, description string) {
	t.Helper()
	var re *oauth2.RetrieveError
	require.True(t, errors.As(err, &re), "%v", err)
	require.Equal(t, code, re.ErrorCode)
	require.Equal(t, description, re.ErrorDescription)
}

func TestIDPortenStandin(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.Standin.RedirectURIs = flagx.StringList{rpCallback} })
	rp := newIDPortenRP(t, s)
	mother, child := rp.pop.Citizens[0], rp.pop.Citizens[2]
	for _, f := range []string{standin.DevClientFile, standin.CitizensFile, standin.StateFile} {
		st, err := os.Stat(filepath.Join(s.cfg.DataDir, f))
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), st.Mode().Perm(), f)
	}

	t.Run("headless login returns a verified ID token with ID-porten's claims", func(t *testing.T) {
		before := time.Now().Unix()
		code, verifier := rp.headless(mother.Pid, standin.ACRHigh, "nonce-0123456789")
		tok, claims := rp.exchange(code, verifier, "nonce-0123456789")
		require.Equal(t, "Bearer", tok.TokenType)
		require.Equal(t, rp.client.Issuer, claims["iss"])
		require.Equal(t, rp.client.ClientID, claims["aud"])
		require.Equal(t, mother.Pid, claims["pid"])
		require.Equal(t, standin.ACRHigh, claims["acr"])
		require.Equal(t, []any{"TestID"}, claims["amr"])
		require.Equal(t, "nb", claims["locale"])
		require.NotEmpty(t, claims["sid"])
		require.GreaterOrEqual(t, int64(claims["auth_time"].(float64)), before)
		sub := claims["sub"].(string)
		require.NotContains(t, sub, mother.Pid)
		require.Len(t, sub, 43)

		// Pairwise: the same person has the same sub at this client, another person another.
		code, verifier = rp.headless(mother.Pid, "", "nonce-second-login")
		_, again := rp.exchange(code, verifier, "nonce-second-login")
		require.Equal(t, sub, again["sub"])
		require.Equal(t, standin.ACRSubstantial, again["acr"], "the default level")
		code, verifier = rp.headless(child.Pid, standin.ACRSubstantial, "nonce-the-child-")
		_, other := rp.exchange(code, verifier, "nonce-the-child-")
		require.NotEqual(t, sub, other["sub"])
	})

	t.Run("PKCE S256 is required", func(t *testing.T) {
		hint := oauth2.SetAuthURLParam("login_hint", "testid:"+mother.Pid)
		q := rp.authorize(hint)
		require.Equal(t, "invalid_request", q.Get("error"))
		require.Equal(t, "code_challenge is required: PKCE with S256", q.Get("error_description"))
		require.Empty(t, q.Get("code"))

		verifier := oauth2.GenerateVerifier()
		q = rp.authorize(hint, oauth2.SetAuthURLParam("code_challenge", verifier), oauth2.SetAuthURLParam("code_challenge_method", "plain"))
		require.Equal(t, "invalid_request", q.Get("error"))
		require.Equal(t, "code_challenge_method must be S256", q.Get("error_description"))

		q = rp.authorize(hint, oauth2.SetAuthURLParam("code_challenge", oauth2.S256ChallengeFromVerifier(verifier)))
		require.Equal(t, "code_challenge_method must be S256", q.Get("error_description"), "no method means plain")

		code, _ := rp.headless(mother.Pid, "", "nonce-0123456789")
		_, err := rp.conf.Exchange(context.Background(), code, oauth2.VerifierOption(oauth2.GenerateVerifier()))
		requireTokenError(t, err, "invalid_grant", "code_verifier does not match code_challenge")
		code, _ = rp.headless(mother.Pid, "", "nonce-0123456789")
		_, err = rp.conf.Exchange(context.Background(), code)
		requireTokenError(t, err, "invalid_request", "code_verifier is required")
	})

	t.Run("unknown login_hint pid is refused", func(t *testing.T) {
		stranger, err := standin.SyntheticPid(time.Date(1950, 5, 17, 0, 0, 0, 0, time.UTC), 123)
		require.NoError(t, err)
		for _, hint := range []string{"testid:" + stranger, "testid:" + stranger + "_" + standin.ACRHigh, "testid:12345678901"} {
			q := rp.authorize(oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("login_hint", hint))
			require.Equal(t, "access_denied", q.Get("error"))
			require.Equal(t, "login_hint names no test citizen", q.Get("error_description"))
			require.Empty(t, q.Get("code"))
		}
		q := rp.authorize(oauth2.S256ChallengeOption(oauth2.GenerateVerifier()), oauth2.SetAuthURLParam("login_hint", "testid:"+mother.Pid+"_idporten-loa-low"))
		require.Equal(t, "invalid_request", q.Get("error"))
	})

	t.Run("a code is single use", func(t *testing.T) {
		code, verifier := rp.headless(mother.Pid, "", "nonce-0123456789")
		rp.exchange(code, verifier, "nonce-0123456789")
		_, err := rp.conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		requireTokenError(t, err, "invalid_grant", "authorization code is unknown, expired or already used")
	})

	t.Run("a wrong redirect_uri is refused", func(t *testing.T) {
		// At authorize: an error page, never a redirect to the unregistered URI.
		conf := rp.conf
		conf.RedirectURL = "https://evil.example/callback"
		resp, err := rp.browser.Get(conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()),
			oauth2.SetAuthURLParam("login_hint", "testid:"+mother.Pid)))
		require.NoError(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusBadRequest, resp.StatusCode)
		require.Empty(t, resp.Header.Get("Location"))
		require.Contains(t, string(body), "redirect_uri er ikke registrert")

		// At the token endpoint: another registered URI than the authorization request named.
		code, verifier := rp.headless(mother.Pid, "", "nonce-0123456789")
		conf.RedirectURL = rp.client.RedirectURIs[0]
		require.NotEqual(t, rpCallback, conf.RedirectURL)
		_, err = conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		requireTokenError(t, err, "invalid_grant", "redirect_uri does not match the authorization request")
	})

	t.Run("a wrong client secret is refused", func(t *testing.T) {
		code, verifier := rp.headless(mother.Pid, "", "nonce-0123456789")
		conf := rp.conf
		conf.ClientSecret = "wrong"
		_, err := conf.Exchange(context.Background(), code, oauth2.VerifierOption(verifier))
		requireTokenError(t, err, "invalid_client", "client authentication failed")
	})

	t.Run("interactive login page with CSRF protection", func(t *testing.T) {
		verifier := oauth2.GenerateVerifier()
		resp, err := rp.browser.Get(rp.conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oidc.Nonce("nonce-0123456789"),
			oauth2.SetAuthURLParam("acr_values", standin.ACRHigh)))
		require.NoError(t, err)
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Contains(t, string(page), `<html lang="nb">`)
		require.Contains(t, string(page), "Velg testperson")
		require.NotContains(t, string(page), "<script")
		var csrfCookie *http.Cookie
		for _, c := range resp.Cookies() {
			if c.Name == "idporten-standin-csrf" {
				csrfCookie = c
			}
		}
		require.NotNil(t, csrfCookie)
		require.True(t, csrfCookie.HttpOnly)
		field := func(name string) string {
			m := regexp.MustCompile(`name="` + name + `" value="([^"]+)"`).FindSubmatch(page)
			require.NotNil(t, m, name)
			return string(m[1])
		}
		post := func(csrf string, cookie *http.Cookie) *http.Response {
			values := url.Values{"request": {field("request")}, "csrf": {csrf}, "pid": {child.Pid}, "acr": {standin.ACRHigh}}
			req, err := http.NewRequest(http.MethodPost, rp.client.Issuer+"/login", strings.NewReader(values.Encode()))
			require.NoError(t, err)
			req.Header.Set("Content-Type", form)
			if cookie != nil {
				req.AddCookie(cookie)
			}
			resp, err := rp.browser.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			return resp
		}
		require.Equal(t, http.StatusForbidden, post(field("csrf"), nil).StatusCode, "no CSRF cookie")
		require.Equal(t, http.StatusForbidden, post("forged", csrfCookie).StatusCode, "wrong CSRF field")
		resp = post(field("csrf"), csrfCookie)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		loc, err := url.Parse(resp.Header.Get("Location"))
		require.NoError(t, err)
		_, claims := rp.exchange(loc.Query().Get("code"), verifier, "nonce-0123456789")
		require.Equal(t, child.Pid, claims["pid"])
		require.Equal(t, standin.ACRHigh, claims["acr"])
		require.Equal(t, http.StatusForbidden, post(field("csrf"), csrfCookie).StatusCode, "the form is single use")
	})

	t.Run("revoke and logout", func(t *testing.T) {
		code, verifier := rp.headless(mother.Pid, "", "nonce-0123456789")
		tok, _ := rp.exchange(code, verifier, "nonce-0123456789")
		values := url.Values{"token": {tok.AccessToken}}
		req, err := http.NewRequest(http.MethodPost, rp.client.Issuer+"/revoke", strings.NewReader(values.Encode()))
		require.NoError(t, err)
		req.Header.Set("Content-Type", form)
		req.SetBasicAuth(rp.client.ClientID, rp.client.ClientSecret)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)

		raw, _ := tok.Extra("id_token").(string)
		logout := rp.client.Issuer + "/logout?" + url.Values{"id_token_hint": {raw}, "post_logout_redirect_uri": {rpCallback}, "state": {"bye"}}.Encode()
		resp, err = rp.browser.Get(logout)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, rpCallback+"?state=bye", resp.Header.Get("Location"))
	})

	// Never an fnr in the logs (the access log names paths only; the stand-in logs client and level).
	for _, c := range rp.pop.Citizens {
		require.NotContains(t, s.logs.String(), c.Pid)
	}
	require.NotContains(t, s.logs.String(), rp.client.ClientSecret)
}

func TestIDPortenStandinOnlyInDev(t *testing.T) {
	discovery := "/idporten-standin/.well-known/openid-configuration"
	s := newProductionServer(t)
	resp, err := http.Get(s.base + discovery)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNotFound, resp.StatusCode)
	for _, f := range []string{standin.DevClientFile, standin.CitizensFile, standin.StateFile} {
		require.NoFileExists(t, filepath.Join(s.cfg.DataDir, f))
	}
	s.stop()

	s = newProductionServer(t, func(c *serveConfig) { c.Standin.IDP = true })
	resp, err = http.Get(s.base + discovery)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "--standin-idp turns it on without --dev")
}
