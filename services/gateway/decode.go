package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
)

// maxJSONDepth bounds how deeply JSON request bodies may nest.
const maxJSONDepth = 32

// jsonMarshaler writes responses with proto field names and every field present, and reads request bodies
// strictly: valid UTF-8, bounded nesting, no duplicate keys, no wrong types; unknown fields are ignored.
type jsonMarshaler struct{ *runtime.JSONPb }

func newJSONMarshaler() jsonMarshaler {
	return jsonMarshaler{&runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
	}}
}

// Marshal implements runtime.Marshaler. The OAuth2 answers are written in their RFC shapes: the token
// response with exactly its three RFC 6749 5.1 fields, the JWK Set as RFC 7517 has it, the introspection
// response (RFC 7662 2.2) with times as numbers and, when inactive, exactly {"active":false}. Everything
// else goes through protojson.
func (m jsonMarshaler) Marshal(v any) ([]byte, error) {
	switch t := v.(type) {
	case *stsv1.TokenResponse:
		return json.Marshal(tokenResponse{AccessToken: t.GetAccessToken(), ExpiresIn: t.GetExpiresIn(), TokenType: t.GetTokenType()})
	case *stsv1.GetJwksResponse:
		set := jwkSet{Keys: make([]jwk, len(t.GetKeys()))}
		for i, k := range t.GetKeys() {
			set.Keys[i] = jwk{Kty: k.GetKty(), Kid: k.GetKid(), Use: k.GetUse(), Alg: k.GetAlg(), N: k.GetN(), E: k.GetE(),
				Crv: k.GetCrv(), X: k.GetX(), Y: k.GetY()}
		}
		return json.Marshal(set)
	case *introspectionv1.IntrospectResponse:
		if !t.GetActive() {
			return []byte(`{"active":false}`), nil
		}
		return json.Marshal(introspectResponse{
			Active: true, ClientID: t.GetClientId(), ClientName: t.GetClientName(), Scope: t.GetScope(), Aud: t.GetAud(),
			Iss: t.GetIss(), Exp: t.GetExp(), Iat: t.GetIat(), Nbf: t.GetNbf(), Jti: t.GetJti(), Zone: t.GetZone(),
			OrganisationNumber: t.GetOrganisationNumber(), ParentOrganisationNumber: t.GetParentOrganisationNumber(),
			TokenType: t.GetTokenType(),
		})
	}
	if msg, ok := v.(proto.Message); ok && isPVKMessage(msg) {
		return pvkJSON(msg)
	}
	return m.JSONPb.Marshal(v)
}

// isPVKMessage reports whether a message belongs to PVK's face: PVK's own, and the dispatcher's deliveries
// API under /pvk/v1/subscriptions.
func isPVKMessage(msg proto.Message) bool {
	name := string(msg.ProtoReflect().Descriptor().FullName())
	return strings.HasPrefix(name, "hnsec.pvk.") || strings.HasPrefix(name, "hnsec.dispatcher.")
}

// pvkJSON writes a PVK message as PVK does: camelCase names (the proto's personvern_innstillinger gives
// PVK's personvernInnstillinger), every field present except an unset optional one (a status answer
// without a setting has no sekvensnummer or times rather than an empty DateTime a client cannot read),
// and 64-bit integers (sekvensnummer, pagingReference) as JSON numbers rather than protojson's strings.
func pvkJSON(msg proto.Message) ([]byte, error) {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(msg)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	int64Numbers(msg.ProtoReflect().Descriptor(), v)
	return json.Marshal(v)
}

// int64Numbers turns the 64-bit integer fields of a message's JSON form into numbers, recursively.
func int64Numbers(md protoreflect.MessageDescriptor, v map[string]any) {
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		val, ok := v[fd.JSONName()]
		if !ok {
			continue
		}
		switch fd.Kind() {
		case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			if s, isString := val.(string); isString && !fd.IsList() {
				v[fd.JSONName()] = json.Number(s)
			}
		case protoreflect.MessageKind:
			switch x := val.(type) {
			case map[string]any:
				int64Numbers(fd.Message(), x)
			case []any:
				for _, item := range x {
					if m, isMap := item.(map[string]any); isMap {
						int64Numbers(fd.Message(), m)
					}
				}
			}
		}
	}
}

// jwkSet is the JSON shape of a JWK Set (RFC 7517 5).
type jwkSet struct {
	Keys []jwk `json:"keys"`
}

// jwk is the JSON shape of a public JWK.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
}

// introspectResponse is the JSON shape of an active introspection answer.
type introspectResponse struct {
	Active                   bool     `json:"active"`
	ClientID                 string   `json:"client_id"`
	ClientName               string   `json:"client_name"`
	Scope                    string   `json:"scope"`
	Aud                      []string `json:"aud"`
	Iss                      string   `json:"iss"`
	Exp                      int64    `json:"exp"`
	Iat                      int64    `json:"iat"`
	Nbf                      int64    `json:"nbf"`
	Jti                      string   `json:"jti"`
	Zone                     string   `json:"zone"`
	OrganisationNumber       string   `json:"organisation_number"`
	ParentOrganisationNumber string   `json:"parent_organisation_number,omitempty"`
	TokenType                string   `json:"token_type"`
}

// tokenResponse is the JSON shape of a successful token response.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int32  `json:"expires_in"`
	TokenType   string `json:"token_type"`
}

// NewDecoder implements runtime.Marshaler.
func (m jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder { return bodyDecoder(r, m.Unmarshal) }

// bodyDecoder reads the whole body (already bounded by the gateway) and unmarshals it.
func bodyDecoder(r io.Reader, unmarshal func([]byte, any) error) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		if rb, ok := r.(*readBody); ok {
			return unmarshal(rb.rest(), v)
		}
		b, err := io.ReadAll(r)
		if err != nil {
			return err
		}
		return unmarshal(b, v)
	})
}

// Unmarshal implements runtime.Marshaler.
func (m jsonMarshaler) Unmarshal(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	if msg, ok := v.(proto.Message); ok {
		return DecodeJSON(m.UnmarshalOptions, b, msg)
	}
	// A body mapped to one field of the request (body: client) arrives as a pointer to the field.
	if msg, ok := fieldMessage(v); ok {
		return DecodeJSON(m.UnmarshalOptions, b, msg)
	}
	if err := checkJSON(b); err != nil {
		return err
	}
	if err := m.JSONPb.Unmarshal(b, v); err != nil {
		return errors.New(badJSON + "the body does not fit this endpoint's message")
	}
	return nil
}

// fieldMessage returns the message a pointer to a message field points to, allocating it when nil.
func fieldMessage(v any) (proto.Message, bool) {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() || rv.Elem().Kind() != reflect.Pointer {
		return nil, false
	}
	field := rv.Elem()
	if !field.Type().Implements(reflect.TypeFor[proto.Message]()) {
		return nil, false
	}
	if field.IsNil() {
		field.Set(reflect.New(field.Type().Elem()))
	}
	return field.Interface().(proto.Message), true
}

// DecodeJSON decodes a JSON request body into msg with clear errors that name the field and the kind of
// problem, never a value (decode_errors.go).
func DecodeJSON(opts protojson.UnmarshalOptions, b []byte, msg proto.Message) error {
	if err := checkJSON(b); err != nil {
		return err
	}
	opts.DiscardUnknown = opts.DiscardUnknown && lenient(msg.ProtoReflect().Descriptor())
	if err := opts.Unmarshal(b, msg); err != nil {
		return errors.New(badJSON + jsonProblem(b, msg.ProtoReflect().Descriptor()))
	}
	return nil
}

// lenientPackages and lenientMessages are the requests whose unknown JSON fields are ignored: the OAuth2
// endpoints (RFC 6749 3.2 and 4.4: unrecognised parameters are ignored) and PVK v2's operations (the real
// PVK ignores them; required fields are checked on their own, so a misspelt one is never defaulted).
// hnsec's own APIs (registry, subscriptions, deliveries, definitions) refuse an unknown field, naming it.
var (
	lenientPackages = []protoreflect.FullName{"hnsec.sts.v1", "hnsec.introspection.v1"}
	lenientMessages = []protoreflect.FullName{
		"hnsec.pvk.v1.SettInnbyggersPersonvernInnstillingRequest",
		"hnsec.pvk.v1.SjekkInnbyggersPiStatusRequest",
		"hnsec.pvk.v1.HentInnbyggersPiForPartRequest",
		"hnsec.pvk.v1.HentInnbyggereAktivePiForDefinisjonRequest",
	}
)

// lenient reports whether a request message ignores unknown JSON fields.
func lenient(md protoreflect.MessageDescriptor) bool {
	return slices.Contains(lenientPackages, md.ParentFile().Package()) || slices.Contains(lenientMessages, md.FullName())
}

// checkJSON refuses bodies that are not UTF-8 or nest too deeply.
func checkJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("request body is not valid UTF-8")
	}
	if jsonDepth(b) > maxJSONDepth {
		return fmt.Errorf("request body nests deeper than %d levels", maxJSONDepth)
	}
	return nil
}

// jsonDepth returns the deepest nesting of objects and arrays in b, ignoring brackets inside strings.
func jsonDepth(b []byte) int {
	depth, deepest, inString, escaped := 0, 0, false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case inString:
		case c == '{' || c == '[':
			depth++
			deepest = max(deepest, depth)
		case c == '}' || c == ']':
			depth--
		}
	}
	return deepest
}

// formMarshaler reads application/x-www-form-urlencoded bodies (the OAuth2 endpoints) into string fields by
// their proto names, and writes responses as JSON.
type formMarshaler struct{ jsonMarshaler }

// NewDecoder implements runtime.Marshaler.
func (m formMarshaler) NewDecoder(r io.Reader) runtime.Decoder { return bodyDecoder(r, m.Unmarshal) }

// Unmarshal implements runtime.Marshaler.
func (m formMarshaler) Unmarshal(b []byte, v any) error {
	msg, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("cannot decode into %T", v)
	}
	return DecodeForm(b, msg)
}

// DecodeForm decodes a form-urlencoded body into msg's string fields. Parameters must be valid
// percent-encoded UTF-8 and appear at most once (RFC 6749 3.1, 3.2); unknown parameters are ignored.
func DecodeForm(b []byte, msg proto.Message) error {
	rm := msg.ProtoReflect()
	fields := rm.Descriptor().Fields()
	seen := map[string]bool{}
	for _, pair := range strings.Split(string(b), "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return errors.New("form body has a malformed percent-encoding")
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return errors.New("form body has a malformed percent-encoding")
		}
		if !utf8.ValidString(key) || !utf8.ValidString(val) {
			return errors.New("form body is not valid UTF-8")
		}
		fd := fields.ByName(protoreflect.Name(key))
		if seen[key] {
			if fd == nil { // an unknown name is client text: never echoed
				return errors.New("a parameter is repeated")
			}
			return fmt.Errorf("parameter %s is repeated", quoteParam(key))
		}
		seen[key] = true
		if fd == nil {
			continue
		}
		if fd.Kind() != protoreflect.StringKind || fd.Cardinality() == protoreflect.Repeated {
			return fmt.Errorf("parameter %s cannot be sent in a form body", quoteParam(key))
		}
		rm.Set(fd, protoreflect.ValueOfString(val))
	}
	return nil
}

// quoteParam quotes a client-supplied parameter name for an error text, cut to 40 bytes.
func quoteParam(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return fmt.Sprintf("%q", s)
}
