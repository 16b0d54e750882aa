package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/proto"

	dispatcherv1 "github.com/hnsec/hnsec/gen/hnsec/dispatcher/v1"
	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/gen/openapi"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/correlation"
)

// Request body limits: 64 KiB, 512 KiB on PVK's endpoints, and 7 MiB on SettInnbyggersPersonvernInnstilling:
// its signed evidence of up to 4 MiB is 5.33 MiB in base64, with room for the JSON escapes some encoders
// write in it (System.Text.Json writes + as \u002B) and the other members.
const (
	MaxBodyBytes         = 64 << 10
	MaxPVKBodyBytes      = 512 << 10
	MaxEvidenceBodyBytes = 7 << 20
)

// evidenceOperation is the PVK operation that carries signed evidence (MaxEvidenceBodyBytes).
const evidenceOperation = "SettInnbyggersPersonvernInnstilling"

// Media types the gateway reads.
const (
	mediaJSON = "application/json"
	mediaForm = "application/x-www-form-urlencoded"
)

// oauthPaths are the OAuth2 endpoints: they also take form bodies, and their answers are never cached.
var oauthPaths = map[string]bool{"/sts/Token": true, "/sts/token": true, "/sts/introspect": true, "/sts/revoke": true}

// Option configures the REST handler.
type Option func(*gateway)

// WithForwarder has the OAuth2 endpoints present the forwarder token (clientauth.ForwarderToken) with the
// client address they forward, so that the services' failed-authentication throttle believes it. Without
// it they see the gateway as the caller.
func WithForwarder(token string) Option {
	return func(g *gateway) { g.forwarder = token }
}

// New returns the REST handler. conn reaches the services' gRPC APIs; gatherer serves /metrics (nil when
// an ops listener serves them instead).
func New(ctx context.Context, conn grpc.ClientConnInterface, gatherer prometheus.Gatherer, log *slog.Logger, opts ...Option) (http.Handler, error) {
	jm := newJSONMarshaler()
	g := &gateway{log: log, health: healthpb.NewHealthClient(conn),
		marshalers: map[string]runtime.Marshaler{runtime.MIMEWildcard: jm, mediaJSON: jm, mediaForm: formMarshaler{jm}}}
	for _, o := range opts {
		o(g)
	}
	sts, introspection := stsv1.NewTokenServiceClient(conn), introspectionv1.NewIntrospectionServiceClient(conn)
	muxOpts := make([]runtime.ServeMuxOption, 0, len(g.marshalers)+4)
	for media, m := range g.marshalers {
		muxOpts = append(muxOpts, runtime.WithMarshalerOption(media, m))
	}
	mux := runtime.NewServeMux(append(muxOpts,
		runtime.WithErrorHandler(g.handleError),
		runtime.WithRoutingErrorHandler(g.handleRoutingError),
		// gRPC response metadata is internal: none of it becomes an HTTP header.
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithForwardResponseOption(cacheHeaders),
	)...)
	// grpc-gateway tries the routes of a method newest first, with a pattern match each: the token
	// service's (its GET endpoints, and the 405 answers on the OAuth2 paths) are registered last.
	if err := registryv1.RegisterClientRegistryServiceHandlerClient(ctx, mux, registryv1.NewClientRegistryServiceClient(conn)); err != nil {
		return nil, err
	}
	if err := dispatcherv1.RegisterDeliveriesServiceHandlerClient(ctx, mux, dispatcherv1.NewDeliveriesServiceClient(conn)); err != nil {
		return nil, err
	}
	if err := pvkv1.RegisterSubscriptionsServiceHandlerClient(ctx, mux, pvkv1.NewSubscriptionsServiceClient(conn)); err != nil {
		return nil, err
	}
	if err := pvkv1.RegisterPrivacySettingsServiceHandlerClient(ctx, mux, pvkv1.NewPrivacySettingsServiceClient(conn)); err != nil {
		return nil, err
	}
	if err := introspectionv1.RegisterIntrospectionServiceHandlerClient(ctx, mux, introspection); err != nil {
		return nil, err
	}
	if err := stsv1.RegisterTokenServiceHandlerClient(ctx, mux, sts); err != nil {
		return nil, err
	}
	root := Ops(conn, gatherer)
	root.Handle("/", g.checkBody(mux))
	for path, h := range map[string]http.Handler{ // see oauth.go
		"/sts/Token":      oauthEndpoint(g, sts.Token),
		"/sts/token":      oauthEndpoint(g, sts.Token),
		"/sts/introspect": oauthEndpoint(g, introspection.Introspect),
		"/sts/revoke":     oauthEndpoint(g, sts.Revoke),
	} {
		root.Handle("POST "+path, g.checkBody(h))
	}
	root.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", mediaJSON)
		_, _ = w.Write(openapi.JSON)
	})
	var h http.Handler = root
	if g.accessLog != nil {
		h = logRequests(g.accessLog, root)
	}
	return pvkPaths(withCorrelation(h)), nil
}

// Ops returns the operations endpoints every process serves, the gateway or not: /healthz (the process
// runs), /readyz (the gRPC health service conn reaches says SERVING) and /metrics (gatherer, unless nil).
func Ops(conn grpc.ClientConnInterface, gatherer prometheus.Gatherer) *http.ServeMux {
	g := &gateway{health: healthpb.NewHealthClient(conn)}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", g.ready)
	if gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	}
	return mux
}

type gateway struct {
	log    *slog.Logger
	health healthpb.HealthClient
	// marshalers read and write bodies by media type (checkBody leaves the bare type in Content-Type),
	// runtime.MIMEWildcard for the rest: grpc-gateway's ServeMux and the OAuth2 handlers use the same.
	marshalers map[string]runtime.Marshaler
	// forwarder is the token the OAuth2 handlers present with the client's address (WithForwarder).
	forwarder string
	// accessLog logs every request (WithAccessLog); nil: no access log.
	accessLog *slog.Logger
}

// withCorrelation gives each request a korrelasjonsId (the client's own X-Correlation-Id when it is a
// GUID), in the context for the gRPC hop and in the response header.
func withCorrelation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(correlation.Header)
		if !correlation.Valid(id) {
			id = correlation.New()
		}
		w.Header().Set(correlation.Header, id)
		next.ServeHTTP(w, r.WithContext(correlation.With(r.Context(), id)))
	})
}

// checkBody bounds request bodies, admits only the media types the endpoint reads (UTF-8 only) and marks
// OAuth2 answers as not cacheable (RFC 6749 5.1).
func (g *gateway) checkBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		oauth := oauthPaths[r.URL.Path]
		if oauth {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Pragma", "no-cache")
		}
		if r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodPatch {
			next.ServeHTTP(w, r)
			return
		}
		limit := bodyLimit(r.URL.Path)
		if r.ContentLength > limit { // refused before a byte of it is read
			g.writeError(w, r, apierr.New(apierr.RequestTooLarge, "request body is larger than %s", sizeText(limit)))
			return
		}
		body, err := readAll(r, limit)
		if err != nil {
			g.writeError(w, r, apierr.New(apierr.InvalidRequest, "request body could not be read"))
			return
		}
		if int64(len(body)) > limit {
			g.writeError(w, r, apierr.New(apierr.RequestTooLarge, "request body is larger than %s", sizeText(limit)))
			return
		}
		if len(body) > 0 || r.Header.Get("Content-Type") != "" {
			media, err := acceptedMedia(r.Header.Get("Content-Type"), oauth)
			if err != nil {
				g.writeError(w, r, err)
				return
			}
			r.Header.Set("Content-Type", media)
		}
		r.Body = &readBody{Reader: bytes.NewReader(body), b: body}
		next.ServeHTTP(w, r)
	})
}

// readBody is a request body the gateway has read already: the decoders take its bytes without copying.
type readBody struct {
	*bytes.Reader
	b []byte
}

func (*readBody) Close() error { return nil }

// rest returns the bytes not read yet and leaves none.
func (r *readBody) rest() []byte {
	b := r.b[len(r.b)-r.Len():]
	_, _ = r.Seek(0, io.SeekEnd)
	return b
}

// bodyLimit is the body limit of a path: MaxEvidenceBodyBytes for SettInnbyggersPersonvernInnstilling (in
// either path layout, any case), MaxPVKBodyBytes for PVK's other paths, else MaxBodyBytes.
func bodyLimit(path string) int64 {
	if !isPVK(path) {
		return MaxBodyBytes
	}
	for seg := range strings.SplitSeq(path, "/") {
		if strings.EqualFold(seg, evidenceOperation) {
			return MaxEvidenceBodyBytes
		}
	}
	return MaxPVKBodyBytes
}

// sizeText writes a body limit for messages: "7 MiB", "512 KiB".
func sizeText(n int64) string {
	if n%(1<<20) == 0 {
		return strconv.FormatInt(n>>20, 10) + " MiB"
	}
	return strconv.FormatInt(n>>10, 10) + " KiB"
}

// maxPrealloc bounds the buffer readAll sizes by Content-Length before the bytes arrive: a larger body
// grows it as it comes, so a client that only claims a large body holds no more than this.
const maxPrealloc = 1 << 20

// readAll reads at most limit+1 bytes, into a buffer sized by Content-Length when it is given (up to
// maxPrealloc).
func readAll(r *http.Request, limit int64) ([]byte, error) {
	size := int64(512)
	if r.ContentLength > 0 {
		size = min(r.ContentLength, limit, maxPrealloc) + 1
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	_, err := buf.ReadFrom(io.LimitReader(r.Body, limit+1))
	return buf.Bytes(), err
}

// cacheHeaders lets HTTP caches keep the JWK Set as long as the STS says is safe.
func cacheHeaders(_ context.Context, w http.ResponseWriter, m proto.Message) error {
	if j, ok := m.(*stsv1.GetJwksResponse); ok {
		w.Header().Set("Cache-Control", "public, max-age="+strconv.Itoa(int(j.GetMaxAgeSeconds())))
	}
	return nil
}

// acceptedMedia returns the bare media type of a Content-Type the endpoint reads, or an error naming
// what it reads.
func acceptedMedia(contentType string, oauth bool) (string, *apierr.Error) {
	media, params, err := mime.ParseMediaType(contentType)
	want := "application/json"
	if oauth {
		want = "application/x-www-form-urlencoded or application/json"
	}
	if err != nil || !(media == mediaJSON || (oauth && media == mediaForm)) {
		return "", apierr.New(apierr.UnsupportedMedia, "Content-Type must be %s", want)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return "", apierr.New(apierr.UnsupportedMedia, "charset must be utf-8")
	}
	return media, nil
}

// handleError is grpc-gateway's error handler: every gRPC error becomes an apierr body.
func (g *gateway) handleError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	g.writeCallError(w, r, err)
}

// writeCallError writes the error of a call to a service. A failed connection's or a service's internal
// text (apierr.Hidden: "dial tcp 10.0.0.7:9090: connect: connection refused") goes to the log only; the
// caller gets the documented error.
func (g *gateway) writeCallError(w http.ResponseWriter, r *http.Request, err error) {
	if apierr.Hidden(err) {
		g.log.Warn("call to a service failed", "method", r.Method, "path", r.URL.Path, "err", err,
			correlation.LogKey, correlation.From(r.Context()))
	}
	g.writeError(w, r, apierr.FromGRPC(err))
}

// handleRoutingError answers unknown paths (404) and wrong methods (405).
func (g *gateway) handleRoutingError(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
	switch code {
	case http.StatusMethodNotAllowed:
		if oauthPaths[r.URL.Path] {
			w.Header().Set("Allow", http.MethodPost)
		}
		g.writeError(w, r, apierr.New(apierr.MethodNotAllowed, "method %s is not allowed here", r.Method))
	case http.StatusNotFound:
		g.writeError(w, r, apierr.New(apierr.NotFound, "no such endpoint"))
	default:
		g.writeError(w, r, apierr.New(apierr.InvalidRequest, "%s", http.StatusText(code)))
	}
}

// writeError writes e with the request's korrelasjonsId and logs it with the same id.
func (g *gateway) writeError(w http.ResponseWriter, r *http.Request, e *apierr.Error) {
	id := correlation.From(r.Context())
	h := w.Header()
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(apierr.RetryAfterSeconds(e.RetryAfter)))
	}
	switch {
	case e.Kind == apierr.InvalidClient && strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "basic"):
		h.Set("WWW-Authenticate", `Basic realm="hnsec", charset="UTF-8"`)
	case e.Kind == apierr.InvalidToken:
		h.Set("WWW-Authenticate", `Bearer realm="hnsec", error="invalid_token"`)
	}
	level := slog.LevelInfo
	if e.Kind.HTTPStatus >= 500 {
		level = slog.LevelError
	}
	g.log.Log(r.Context(), level, "request failed", "method", r.Method, "path", r.URL.Path, "status", e.Kind.HTTPStatus,
		"error", e.Kind.Name, "code", e.Code, "description", e.Description, correlation.LogKey, id)
	if isPVK(r.URL.Path) {
		writeJSON(w, e.Kind.HTTPStatus, e.PVKBody(id))
		return
	}
	writeJSON(w, e.Kind.HTTPStatus, e.Body(id))
}

// isPVK reports whether path is one of PVK's, whose errors have PVK's shape.
func isPVK(path string) bool {
	return strings.HasPrefix(path, "/personvern/") || strings.HasPrefix(path, "/pvk/")
}

// ready answers 200 when the gRPC services report SERVING, 503 otherwise.
func (g *gateway) ready(w http.ResponseWriter, r *http.Request) {
	resp, err := g.health.Check(r.Context(), &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "not ready"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
