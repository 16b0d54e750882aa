package gateway

import (
	"net/url"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
)

// secretish is a value no error text may contain: it stands for an fnr or a secret in a wrong place.
const secretish = "31415926535"

// Decoder errors name the field and the kind of problem, and never contain the value sent.
func TestDecodeErrorsNameTheFieldNotTheValue(t *testing.T) {
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	tests := []struct {
		name    string
		msg     proto.Message
		body    string
		wantErr string
	}{
		{"fnr as a number", &pvkv1.SjekkInnbyggersPiStatusRequest{}, `{"innbyggerFnr": 31415926535}`,
			"field innbyggerFnr must be a string, not a number"},
		{"fnr as a number, proto name", &pvkv1.SjekkInnbyggersPiStatusRequest{}, `{"innbygger_fnr": 31415926535}`,
			"field innbygger_fnr must be a string, not a number"},
		{"fnr unquoted after a good field", &pvkv1.SjekkInnbyggersPiStatusRequest{}, `{"definisjonGuid":"x","innbyggerFnr": 3141592653x}`,
			"syntax error at byte 49"},
		{"fnr as a bool field", &pvkv1.SettInnbyggersPersonvernInnstillingRequest{}, `{"aktiv": "31415926535"}`,
			"field aktiv must be true or false, not a string"},
		{"fnr in a nested list", &pvkv1.CreateDefinitionRequest{},
			`{"definisjon":{"omfangElementer":[{"omfangKode":"a"},{"omfangKode":31415926535}]}}`,
			"field definisjon.omfangElementer[1].omfangKode must be a string, not a number"},
		{"list element of the wrong kind", &pvkv1.CreateSubscriptionRequest{}, `{"filters":{"definisjonGuids":["a",31415926535]}}`,
			"field filters.definisjonGuids[1] must be a string, not a number"},
		{"null list element", &pvkv1.CreateSubscriptionRequest{}, `{"filters":{"typePis":[null]}}`, "field filters.typePis[0] may not be null"},
		{"list sent as a string", &pvkv1.CreateSubscriptionRequest{}, `{"filters":{"typePis":"31415926535"}}`,
			"field filters.typePis must be an array, not a string"},
		{"object sent as a number", &pvkv1.CreateSubscriptionRequest{}, `{"webhook": 31415926535}`,
			"field webhook must be an object, not a number"},
		{"enum as a boolean", &pvkv1.Subscription{}, `{"status": true}`, "field status must be one of its enum names, not a boolean"},
		{"enum as a fraction", &pvkv1.Subscription{}, `{"status": 3.1415926535}`, "field status is not one of its enum names"},
		{"bad timestamp", &pvkv1.Subscription{}, `{"createTime": "31415926535"}`, "field createTime is not an RFC 3339 timestamp"},
		{"integer out of range", &pvkv1.HentInnbyggereAktivePiForDefinisjonRequest{}, `{"pagingReference": 1e400}`,
			"field pagingReference is not an integer in range"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeJSON(opts, []byte(tt.body), tt.msg)
			require.EqualError(t, err, badJSON+tt.wantErr)
			require.NotContains(t, err.Error(), secretish)
		})
	}
}

// A body mapped to one field of the request (body: client) is decoded, and refused, the same way.
func TestUnmarshalIntoAField(t *testing.T) {
	m := newJSONMarshaler()
	var req registryv1.UpdateClientRequest
	require.NoError(t, m.Unmarshal([]byte(`{"name":"x"}`), &req.Client))
	require.Equal(t, "x", req.GetClient().GetName())

	err := m.Unmarshal([]byte(`{"name": 31415926535}`), &req.Client)
	require.EqualError(t, err, badJSON+"field name must be a string, not a number")

	var def pvkv1.CreateDefinitionRequest
	err = m.Unmarshal([]byte(`{"definisjonNavn": s3cr3t}`), &def.Definisjon)
	require.EqualError(t, err, badJSON+"syntax error at byte 20")
}

// Query parameters that do not parse are named, their values never quoted.
func TestQueryParameterErrors(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		wantErr string
	}{
		{"integer", "pageSize=31415926535x", "query parameter pageSize must be an integer in range"},
		{"integer, proto name", "page_size=31415926535x", "query parameter page_size must be an integer in range"},
		{"twice", "pageSize=1&pageSize=31415926535", "query parameter pageSize is given more than once"},
		{"both names", "pageSize=1&page_size=2", "query parameters set the same field more than once"},
		{"unknown names are ignored", "s3cr3t=31415926535", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			require.NoError(t, err)
			err = quietQueryParser{}.Parse(&registryv1.ListClientsRequest{}, q, utilities.NewDoubleArray(nil))
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantErr)
			require.NotContains(t, err.Error(), secretish)
		})
	}
}

// hnsec's own APIs refuse an unknown field, naming it when it looks like a field name; the OAuth2 and PVK
// v2 requests ignore unknown fields, as the RFCs and the real PVK do.
func TestUnknownFields(t *testing.T) {
	opts := protojson.UnmarshalOptions{DiscardUnknown: true}
	tests := []struct {
		name    string
		msg     proto.Message
		body    string
		wantErr string
	}{
		{"registry: a misspelt field", &registryv1.CreateClientRequest{}, `{"name":"x","scopse":["a/b"]}`,
			"field scopse is not a field of this endpoint's message"},
		{"registry: proto and JSON names both work", &registryv1.CreateClientRequest{}, `{"organisation_number":"1","clientSystemId":"x"}`, ""},
		{"subscriptions: nested", &pvkv1.CreateSubscriptionRequest{}, `{"webhook":{"url":"https://x","useXAuth":true}}`,
			"field webhook.useXAuth is not a field of this endpoint's message"},
		{"definitions: in a list", &pvkv1.CreateDefinitionRequest{}, `{"definisjon":{"omfangElementer":[{"omfangKode":"a"},{"kode":"b"}]}}`,
			"field definisjon.omfangElementer[1].kode is not a field of this endpoint's message"},
		{"a key that is no field name is not echoed", &registryv1.CreateClientRequest{}, `{"31415926535":"x"}`,
			"the body has a field that this endpoint does not know"},
		{"a value problem comes first", &registryv1.CreateClientRequest{}, `{"x":1,"name":31415926535}`, "field name must be a string, not a number"},
		{"PVK v2 ignores unknown fields", &pvkv1.SettInnbyggersPersonvernInnstillingRequest{}, `{"aktiv":true,"ukjent":1}`, ""},
		{"OAuth2 ignores unknown fields", &stsv1.TokenRequest{}, `{"grant_type":"client_credentials","ukjent":1}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DecodeJSON(opts, []byte(tt.body), tt.msg)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, badJSON+tt.wantErr)
			require.NotContains(t, err.Error(), secretish)
		})
	}
}
