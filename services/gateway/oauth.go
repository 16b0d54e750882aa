package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/clientauth"
)

// The OAuth2 endpoints (POST /sts/Token, /sts/token, /sts/introspect, /sts/revoke) are served by handlers
// of their own instead of grpc-gateway's ServeMux. They are RFC wire formats rather than REST mappings of
// their messages (form or JSON bodies, RFC 6749 error objects, answers of exact shapes: the marshalers in
// decode.go shape them either way), and grpc-gateway's generic work per request (metadata from every
// header, contexts, response forwarding) was a quarter of a REST introspection's CPU. They call the same
// gRPC clients as every other route, with the same body checks, decoders, answers and errors; other methods
// on their paths still reach grpc-gateway, which answers 405.

// oauthEndpoint serves one OAuth2 endpoint: it decodes the body (already bounded and typed by checkBody)
// into a Req, calls the service with the request's forwarded metadata and writes the answer or the error.
func oauthEndpoint[Req any, PReq interface {
	*Req
	proto.Message
}, Resp proto.Message](g *gateway, call func(context.Context, PReq, ...grpc.CallOption) (Resp, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req := PReq(new(Req))
		m, ok := g.marshalers[r.Header.Get("Content-Type")]
		if !ok {
			m = g.marshalers[runtime.MIMEWildcard]
		}
		if err := m.NewDecoder(r.Body).Decode(req); err != nil && !errors.Is(err, io.EOF) {
			g.writeError(w, r, apierr.FromGRPC(status.Errorf(codes.InvalidArgument, "%v", err)))
			return
		}
		resp, err := call(metadata.NewOutgoingContext(r.Context(), forwarded(r, g.forwarder)), req)
		if err != nil {
			g.writeCallError(w, r, err)
			return
		}
		body, err := m.Marshal(resp)
		if err != nil {
			g.writeError(w, r, apierr.FromGRPC(err))
			return
		}
		w.Header().Set("Content-Type", m.ContentType(resp))
		_, _ = w.Write(body)
	})
}

// forwarded is the metadata the services read from an HTTP request: the Authorization header, and
// X-Forwarded-For with the peer's address appended, the last entry being the one the gateway vouches for,
// with the forwarder token (clientauth.ForwarderToken) that makes the services believe it. Whether the
// entries before it count is the services' decision (--trusted-proxy: only a trusted proxy's do). Host and
// X-Forwarded-Host stay behind: URLs and audiences come from configuration. Values that are not printable
// ASCII are left out, as gRPC metadata cannot carry them.
func forwarded(r *http.Request, forwarder string) metadata.MD {
	md := make(metadata.MD, 3)
	for _, v := range r.Header.Values("Authorization") {
		if printableASCII(v) {
			md["authorization"] = append(md["authorization"], v)
		}
	}
	if forwarder != "" {
		md[clientauth.ForwarderMetadataKey] = []string{forwarder}
	}
	xff := r.Header.Values("X-Forwarded-For")
	if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		xff = append(xff, ip)
	}
	if v := strings.Join(xff, ", "); v != "" && printableASCII(v) {
		md["x-forwarded-for"] = []string{v}
	}
	return md
}

// printableASCII reports whether s may be a gRPC metadata text value.
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
