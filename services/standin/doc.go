// Package standin holds the development stand-ins for systems outside Helsenorge that citizen login
// needs: an ID-porten stand-in (an OpenID Connect identity provider at <public base>/idporten-standin,
// see IDPorten) and a population-register stand-in (test citizens, parent–child relations and
// fullmakter, see Population, loaded from <data-dir>/dev-citizens.json). The Helsenorge OP (issue 16,
// services/oidc, not yet built) federates to the ID-porten stand-in by issuer URL exactly as it federates
// to the real ID-porten, so nothing in production reaches this package: hnsec serve mounts it only with
// --dev or --standin-idp. It depends on pkg/fnr and go-jose only; it must not touch another service's
// tables or packages. Its state (sessions, codes, issued tokens) is in memory: it is one dev process's
// stand-in, not a service that scales out. It never logs an fnr, a token, a code or a secret.
//
// # Library evaluation for the Helsenorge OP (issue 16)
//
// Candidates: github.com/zitadel/oidc/v3 (op package, v3.52.0 on the module proxy), github.com/ory/fosite
// (v0.49.0), or protocol code of our own on github.com/go-jose/go-jose/v4 (already a dependency: the STS
// key ring and the registry's client assertions use it). Requirement by requirement (OIDC.md section 1):
//
//   - PAR, mandatory for public clients, request_uri single use and bound to the client: zitadel v3.52.0
//     has no PAR (pushed_authorization_request.go exists only on its unreleased main branch; zitadel/zitadel
//     #10239 is still open). fosite has it (handler/par) including a per-client "require PAR".
//   - PKCE S256 only, mandatory: zitadel's oidc.VerifyCodeChallenge accepts "" and plain; refusing them is
//     left to our Storage.CreateAuthRequest. fosite: EnforcePKCE plus EnablePKCEPlainChallengeMethod=false
//     does exactly this.
//   - Custom paths (/sts/oidcprov/v2/authorize, v1/par, v3/token, v1/extend, two discovery paths): zitadel
//     allows custom endpoints (WithCustom...Endpoint) but serves one discovery path and owns the router;
//     fosite has no routing at all (we write the handlers). Both are plain net/http, while hnsec's services
//     expose gRPC with a grpc-gateway REST face: either library would need an HTTP side door.
//   - Refresh WITHOUT rotation, no new ID token, optional down-scoping, plus /extend: fosite's refresh
//     handler always rotates (flow_refresh.go generates a new refresh token and calls RotateRefreshToken),
//     so we would replace the handler; zitadel leaves rotation to Storage (possible), but /extend is ours
//     either way.
//   - Pairwise sub per client: neither library computes it (Hydra does, above fosite); in both it is our
//     storage code.
//   - Access tokens in hnsec's reference-JWT envelope, issued and persisted by the STS over gRPC:
//     zitadel's bearer tokens are Encrypt(tokenID:subject) and its JWT access tokens are signed by the OP's
//     own signer; neither is the STS envelope. fosite's AccessTokenStrategy is pluggable, so a strategy
//     calling sts.IssueCitizenToken fits, but its storage model keys everything by token signature.
//   - private_key_jwt (single-use jti, exp <= 60 s, configured audiences): both support it; the registry
//     already verifies these assertions for the STS (services/registry/assertion.go), and the OP must apply
//     the same rules, so reuse beats a second implementation.
//   - self_signed_tls_client_auth with per-instance certificates registered at the first PAR call, tokens
//     bound with cnf.x5t#S256: neither released library has it (zitadel's mtls.go on main only, with
//     pre-registered certificates and binding only for its own JWT access tokens; fosite none).
//   - Back-channel logout with retries: neither (zitadel's backchannel.go is main-only; fosite none).
//   - Errors: RFC 6749 shape plus Helsenorge's error_code ("204019"): both libraries' error types would need
//     wrapping; our pkg/apierr already maps errors in one place.
//
// Recommendation: hand-written protocol code on go-jose/v4 (signing, JWKS, ID-token and logout-token
// building) with the flow-per-file layout STYLE.md borrows from fosite (par.go, authorize.go,
// token_code.go, token_refresh.go, extend.go, revoke.go, endsession.go, backchannel_logout.go), one
// validation function per request type returning an RFC-shaped error. Of the seven hard requirements
// zitadel v3.52.0 meets none without storage-side work and lacks PAR, mTLS binding and back-channel
// logout; fosite meets PAR and PKCE but fights refresh without rotation, the STS envelope, mTLS binding
// and back-channel logout, and would bring its own storage and HTTP model into a gRPC service. The
// protocol surface we need is small and fully specified in OIDC.md; interoperability is proven with real
// RP libraries instead (golang.org/x/oauth2 and github.com/coreos/go-oidc/v3 in the tests, zitadel's RP
// and node's openid-client later). This stand-in is built the same way.
package standin
