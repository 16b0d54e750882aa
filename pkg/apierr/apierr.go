// Package apierr is hnsec's one typed error. An *Error names a Kind (an OAuth2 error code with its HTTP
// status, gRPC code and Helsenorge numeric code) and a description safe to show the client. The mapping to
// gRPC happens in GRPCStatus, the mapping back in FromGRPC, and the HTTP body in Body: nowhere else.
//
// It depends on nothing but gRPC's status package and the google.rpc error details.
package apierr

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Domain is the google.rpc.ErrorInfo domain of every hnsec error.
const Domain = "hnsec"

// Kind is one documented error: what the client sees in "error", the HTTP status, the gRPC code and the
// Helsenorge fields "code" and "errorCategory".
type Kind struct {
	// Name is unique among kinds and travels as ErrorInfo.Reason.
	Name string
	// OAuth is the value of the "error" field (RFC 6749 5.2 for the OAuth2 endpoints).
	OAuth string
	// HTTPStatus is the response status and the "statusCode" field.
	HTTPStatus int
	// GRPC is the gRPC status code.
	GRPC codes.Code
	// Code is Helsenorge's numeric reference ("code").
	Code int
	// Category is Helsenorge's "errorCategory".
	Category string
}

// The documented kinds. README.md lists them with their codes.
var (
	InvalidRequest       = Kind{"invalid_request", "invalid_request", http.StatusBadRequest, codes.InvalidArgument, 1001, "Validation"}
	InvalidClient        = Kind{"invalid_client", "invalid_client", http.StatusUnauthorized, codes.Unauthenticated, 1002, "Authentication"}
	UnauthorizedClient   = Kind{"unauthorized_client", "unauthorized_client", http.StatusBadRequest, codes.FailedPrecondition, 1004, "Authorization"}
	UnsupportedGrantType = Kind{"unsupported_grant_type", "unsupported_grant_type", http.StatusBadRequest, codes.InvalidArgument, 1005, "Validation"}
	InvalidScope         = Kind{"invalid_scope", "invalid_scope", http.StatusBadRequest, codes.InvalidArgument, 1006, "Authorization"}
	InvalidToken         = Kind{"invalid_token", "invalid_token", http.StatusUnauthorized, codes.Unauthenticated, 1007, "Authentication"}
	PermissionDenied     = Kind{"permission_denied", "access_denied", http.StatusForbidden, codes.PermissionDenied, 1403, "Authorization"}
	NotFound             = Kind{"not_found", "not_found", http.StatusNotFound, codes.NotFound, 1404, "Validation"}
	MethodNotAllowed     = Kind{"method_not_allowed", "invalid_request", http.StatusMethodNotAllowed, codes.Unimplemented, 1405, "Validation"}
	AlreadyExists        = Kind{"already_exists", "already_exists", http.StatusConflict, codes.AlreadyExists, 1409, "Validation"}
	FailedPrecondition   = Kind{"failed_precondition", "failed_precondition", http.StatusConflict, codes.FailedPrecondition, 1412, "Validation"}
	RequestTooLarge      = Kind{"request_too_large", "invalid_request", http.StatusRequestEntityTooLarge, codes.InvalidArgument, 1413, "Validation"}
	UnsupportedMedia     = Kind{"unsupported_media_type", "invalid_request", http.StatusUnsupportedMediaType, codes.InvalidArgument, 1415, "Validation"}
	TooManyRequests      = Kind{"too_many_requests", "slow_down", http.StatusTooManyRequests, codes.ResourceExhausted, 1429, "Throttling"}
	ServerError          = Kind{"server_error", "server_error", http.StatusInternalServerError, codes.Internal, 1500, "Technical"}
	Unavailable          = Kind{"temporarily_unavailable", "temporarily_unavailable", http.StatusServiceUnavailable, codes.Unavailable, 1503, "Technical"}
)

var kindsByName = map[string]Kind{}

// byGRPC maps a bare gRPC status (no ErrorInfo, e.g. from a library) to a kind.
var byGRPC = map[codes.Code]Kind{
	codes.InvalidArgument:    InvalidRequest,
	codes.OutOfRange:         InvalidRequest,
	codes.Unauthenticated:    InvalidToken,
	codes.PermissionDenied:   PermissionDenied,
	codes.NotFound:           NotFound,
	codes.AlreadyExists:      AlreadyExists,
	codes.FailedPrecondition: FailedPrecondition,
	codes.ResourceExhausted:  TooManyRequests,
	codes.Unimplemented:      MethodNotAllowed,
	codes.Unavailable:        Unavailable,
	codes.DeadlineExceeded:   Unavailable,
}

func init() {
	for _, k := range []Kind{InvalidRequest, InvalidClient, UnauthorizedClient, UnsupportedGrantType, InvalidScope,
		InvalidToken, PermissionDenied, NotFound, MethodNotAllowed, AlreadyExists, FailedPrecondition, RequestTooLarge,
		UnsupportedMedia, TooManyRequests, ServerError, Unavailable} {
		kindsByName[k.Name] = k
	}
}

// Error is an error a client may see.
type Error struct {
	Kind Kind
	// Description is shown to the client ("error_description" and "message"); never secret material.
	Description string
	// RetryAfter, when positive, is sent as Retry-After.
	RetryAfter time.Duration
	// Code, when set, is a service's own error code (PVK's "EPVK-nnnnnn").
	Code string
}

// New returns an *Error of kind k.
func New(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Description: fmt.Sprintf(format, args...)}
}

// WithCode returns an *Error of kind k with a service's own code.
func WithCode(k Kind, code, format string, args ...any) *Error {
	e := New(k, format, args...)
	e.Code = code
	return e
}

// Error implements error.
func (e *Error) Error() string { return e.Kind.Name + ": " + e.Description }

// Is reports whether target is an *Error of the same kind, so errors.Is(err, apierr.New(k, "")) works.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Kind.Name == e.Kind.Name
}

// GRPCStatus maps the error to a gRPC status with a google.rpc.ErrorInfo detail: the one place that does.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Kind.GRPC, e.Description)
	info := &errdetails.ErrorInfo{Reason: e.Kind.Name, Domain: Domain, Metadata: map[string]string{}}
	if e.RetryAfter > 0 {
		info.Metadata["retry_after"] = strconv.Itoa(RetryAfterSeconds(e.RetryAfter))
	}
	if e.Code != "" {
		info.Metadata["code"] = e.Code
	}
	if withInfo, err := st.WithDetails(info); err == nil {
		return withInfo
	}
	return st
}

// RetryAfterSeconds rounds d up to whole seconds, at least 1.
func RetryAfterSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(s, 1)
}

// UnavailableDescription is the description of a call between hnsec's services that failed in transport
// (the peer down, unreachable or too slow: gRPC's Unavailable or DeadlineExceeded without hnsec's
// ErrorInfo). gRPC's own text names the peer's address; it goes to the log, never to the caller.
const UnavailableDescription = "a service this request needs is unavailable; retry later"

// Hidden reports whether err is a gRPC status that is no documented hnsec error and whose text may name
// internals: a call between services that failed in transport (Unavailable, DeadlineExceeded) or a
// peer's internal failure (Unknown, Internal, DataLoss). FromGRPC replaces its text (with
// UnavailableDescription or "internal error"); whoever maps it should log the original.
func Hidden(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return false
	}
	st, ok := status.FromError(err)
	if !ok || documented(st) {
		return false
	}
	switch st.Code() {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Unknown, codes.Internal, codes.DataLoss:
		return true
	}
	return false
}

// documented reports whether st carries hnsec's ErrorInfo with a known kind: a documented error a peer
// service answered, whose description is fit for the client.
func documented(st *status.Status) bool {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == Domain {
			_, known := kindsByName[info.GetReason()]
			return known
		}
	}
	return false
}

// FromGRPC turns any error (an *Error, a gRPC status from a peer, or anything else) into an *Error.
// Unknown errors become ServerError with a description that leaks nothing, and so do the Hidden ones:
// a transport failure between services becomes Unavailable with UnavailableDescription.
func FromGRPC(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	st, ok := status.FromError(err)
	if !ok {
		return New(ServerError, "internal error")
	}
	for _, d := range st.Details() {
		info, isInfo := d.(*errdetails.ErrorInfo)
		if !isInfo || info.GetDomain() != Domain {
			continue
		}
		k, known := kindsByName[info.GetReason()]
		if !known {
			break
		}
		out := &Error{Kind: k, Description: st.Message(), Code: info.GetMetadata()["code"]}
		if s, err := strconv.Atoi(info.GetMetadata()["retry_after"]); err == nil && s > 0 {
			out.RetryAfter = time.Duration(s) * time.Second
		}
		return out
	}
	if k, known := byGRPC[st.Code()]; known {
		if Hidden(err) {
			return New(k, UnavailableDescription)
		}
		return &Error{Kind: k, Description: st.Message()}
	}
	return New(ServerError, "internal error")
}

// Body is the JSON error body: the OAuth2 fields (RFC 6749 5.2) and the Helsenorge fields (seed 002).
type Body struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	Code             int    `json:"code"`
	Message          string `json:"message"`
	ErrorCategory    string `json:"errorCategory"`
	StatusCode       int    `json:"statusCode"`
	KorrelasjonsID   string `json:"korrelasjonsId"`
}

// Body returns the JSON body for the error with the request's correlation id.
func (e *Error) Body(korrelasjonsID string) Body {
	return Body{
		Error:            e.Kind.OAuth,
		ErrorDescription: e.Description,
		Code:             e.Kind.Code,
		Message:          e.Description,
		ErrorCategory:    e.Kind.Category,
		StatusCode:       e.Kind.HTTPStatus,
		KorrelasjonsID:   korrelasjonsID,
	}
}

// PVKBody is the error body of the PVK endpoints: PVK's own shape plus the korrelasjonsId.
type PVKBody struct {
	Code           string `json:"code"`
	Message        string `json:"message"`
	ErrorCategory  string `json:"errorCategory"`
	KorrelasjonsID string `json:"korrelasjonsId"`
}

// PVKBody returns the PVK-shaped body: the error's own code, or "EPVK-1" followed by the kind's code.
func (e *Error) PVKBody(korrelasjonsID string) PVKBody {
	code := e.Code
	if code == "" {
		code = fmt.Sprintf("EPVK-1%05d", e.Kind.Code)
	}
	return PVKBody{Code: code, Message: e.Description, ErrorCategory: e.Kind.Category, KorrelasjonsID: korrelasjonsID}
}
