package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/correlation"
	"github.com/hnsec/hnsec/services/gateway"
	"github.com/hnsec/hnsec/services/pvk"
)

// PVK's contract as a real client uses it: NORPREG's PVK broker (github.com/NORPREG/PVKBroker_cs,
// src/Pvk/ApiCaller/PvkCaller.cs, PvkApiModel.cs and src/Configuration/ConfigurationValues.cs) lists
// with GET and query parameters on /personvern/Personverninnstillinger/{Operasjon}/v2, sets with POST and a
// JSON body, and reads the answers with System.Text.Json: member names are matched exactly (case
// matters), unknown members are ignored, `required` members must be present, an int must fit 32 bits, a
// DateTime must be ISO 8601 with an upper-case T and Z and null never fits a non-nullable member. The
// structs below mirror the broker's models with that in their tags (contract:"required"); contractDecode
// enforces it.

// brokerHentInnbyggere mirrors the broker's ApiResponseHentInnbyggere. The definition's members and
// reFasteMetadata are nullable there; hnsec promises them, so they are required here.
type brokerHentInnbyggere struct {
	DefinisjonGuid          *string        `json:"definisjonGuid" contract:"required"`
	DefinisjonNavn          *string        `json:"definisjonNavn" contract:"required"`
	PartKode                *string        `json:"partKode" contract:"required"`
	TypePi                  *string        `json:"typePi" contract:"required"`
	ReFasteMetadata         *brokerReFaste `json:"reFasteMetadata" contract:"required"`
	PagingReference         int32          `json:"pagingReference" contract:"required"`
	PersonvernInnstillinger []brokerPi     `json:"personvernInnstillinger" contract:"required"`
}

// brokerPi mirrors the broker's Pi.
type brokerPi struct {
	InnbyggerFnr        string     `json:"innbyggerFnr" contract:"required"`
	Sekvensnummer       int32      `json:"sekvensnummer" contract:"required"`
	OpprettetTidspunkt  dotnetTime `json:"opprettetTidspunkt" contract:"required"`
	SistEndretTidspunkt dotnetTime `json:"sistEndretTidspunkt" contract:"required"`
}

// brokerReFaste mirrors the broker's ReFasteMetadata.
type brokerReFaste struct {
	OmfangElementer []brokerOmfang `json:"omfangElementer" contract:"required"`
}

// brokerOmfang mirrors the broker's OmfangElementer.
type brokerOmfang struct {
	OmfangKode   *string `json:"omfangKode" contract:"required"`
	LogiskOmfang *string `json:"logiskOmfang" contract:"required"`
	Presisering  *string `json:"presisering" contract:"required"`
}

// brokerSett mirrors the broker's ApiResponseSettInnbygger.
type brokerSett struct {
	ReturKode     string `json:"returKode" contract:"required"`
	InstansEndret string `json:"instansEndret" contract:"required"`
}

// brokerError mirrors the broker's ApiResponseSettInnbyggerError, plus hnsec's korrelasjonsId.
type brokerError struct {
	Code           string `json:"code" contract:"required"`
	Message        string `json:"message" contract:"required"`
	ErrorCategory  string `json:"errorCategory" contract:"required"`
	KorrelasjonsID string `json:"korrelasjonsId" contract:"required"`
}

// piStatus is SjekkInnbyggersPiStatus's answer as documented clients read it: aktiv at top level.
type piStatus struct {
	Aktiv               bool        `json:"aktiv" contract:"required"`
	InnbyggerFnr        string      `json:"innbyggerFnr" contract:"required"`
	DefinisjonGuid      string      `json:"definisjonGuid" contract:"required"`
	DefinisjonNavn      string      `json:"definisjonNavn" contract:"required"`
	PartKode            string      `json:"partKode" contract:"required"`
	TypePi              string      `json:"typePi" contract:"required"`
	Sekvensnummer       *int32      `json:"sekvensnummer"`
	Tidspunkt           *dotnetTime `json:"tidspunkt"`
	OpprettetTidspunkt  *dotnetTime `json:"opprettetTidspunkt"`
	SistEndretTidspunkt *dotnetTime `json:"sistEndretTidspunkt"`
}

// piForPart is HentInnbyggersPiForPart's answer.
type piForPart struct {
	PersonvernInnstillinger []struct {
		InnbyggerFnr        string     `json:"innbyggerFnr" contract:"required"`
		DefinisjonGuid      string     `json:"definisjonGuid" contract:"required"`
		DefinisjonNavn      string     `json:"definisjonNavn" contract:"required"`
		PartKode            string     `json:"partKode" contract:"required"`
		TypePi              string     `json:"typePi" contract:"required"`
		Aktiv               bool       `json:"aktiv" contract:"required"`
		Sekvensnummer       int32      `json:"sekvensnummer" contract:"required"`
		Tidspunkt           dotnetTime `json:"tidspunkt" contract:"required"`
		OpprettetTidspunkt  dotnetTime `json:"opprettetTidspunkt" contract:"required"`
		SistEndretTidspunkt dotnetTime `json:"sistEndretTidspunkt" contract:"required"`
	} `json:"personvernInnstillinger" contract:"required"`
}

// dotnetTime is a DateTime as System.Text.Json reads it: ISO 8601 extended, upper-case T and Z, at most
// 16 fractional digits (hnsec always gives the offset).
type dotnetTime struct{ time.Time }

var dotnetTimeRE = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,16})?(Z|[+-]\d{2}:\d{2})$`)

// UnmarshalJSON implements json.Unmarshaler.
func (d *dotnetTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a DateTime must be a string: %s", b)
	}
	if !dotnetTimeRE.MatchString(s) {
		return fmt.Errorf("%q is no DateTime System.Text.Json reads", s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	d.Time = t
	return err
}

// contractT is what contractDecode reports to: a test, or failureRecorder.
type contractT interface {
	require.TestingT
	Helper()
}

// failureRecorder records whether a check failed, stopping the check as require does.
type failureRecorder struct{ failed bool }

func (r *failureRecorder) Errorf(string, ...any) { r.failed = true }
func (r *failureRecorder) FailNow()              { r.failed = true; runtime.Goexit() }
func (r *failureRecorder) Helper()               {}

// contractFails reports whether contractDecode refuses raw for v.
func contractFails(raw string, v any) bool {
	r := &failureRecorder{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		contractDecode(r, []byte(raw), v)
	}()
	<-done
	return r.failed
}

// The strict decoder refuses what the broker's System.Text.Json would not read (or would read wrongly).
func TestPVKContractDecoderIsStrict(t *testing.T) {
	good := `{"definisjonGuid":"g","definisjonNavn":"n","partKode":"p","typePi":"samtykke","reFasteMetadata":{"omfangElementer":[]},` +
		`"pagingReference":0,"personvernInnstillinger":[{"innbyggerFnr":"f","sekvensnummer":1,"opprettetTidspunkt":"2026-01-02T03:04:05.123456789Z",` +
		`"sistEndretTidspunkt":"2026-01-02T03:04:05Z"}],"ukjent":1}`
	require.False(t, contractFails(good, &brokerHentInnbyggere{}), "unknown members are allowed")
	for name, bad := range map[string]string{
		"list member in another case": strings.Replace(good, "personvernInnstillinger", "personverninnstillinger", 1),
		"required member missing":     strings.Replace(good, `"pagingReference":0,`, "", 1),
		"64-bit pagingReference":      strings.Replace(good, `"pagingReference":0`, `"pagingReference":4294967296`, 1),
		"pagingReference as a string": strings.Replace(good, `"pagingReference":0`, `"pagingReference":"0"`, 1),
		"null list":                   strings.Replace(good, `"personvernInnstillinger":[`, `"personvernInnstillinger":null,"x":[`, 1),
		"lower-case z":                strings.Replace(good, `05Z"}`, `05z"}`, 1),
		"empty DateTime":              strings.Replace(good, `"2026-01-02T03:04:05Z"`, `""`, 1),
		"sekvensnummer as a string":   strings.Replace(good, `"sekvensnummer":1`, `"sekvensnummer":"1"`, 1),
	} {
		require.True(t, contractFails(bad, &brokerHentInnbyggere{}), name)
	}
}

// contractDecode decodes an answer into v (a pointer to a mirror struct) strictly: every member the struct
// marks required is present under its exact name, no member is spelt with another case, null only where
// the struct has a pointer, and the values fit the struct's types.
func contractDecode(t contractT, raw []byte, v any) {
	t.Helper()
	var generic any
	require.NoError(t, json.Unmarshal(raw, &generic), "%s", raw)
	checkMembers(t, "$", generic, reflect.TypeOf(v).Elem(), raw)
	require.NoError(t, json.NewDecoder(bytes.NewReader(raw)).Decode(v), "%s", raw)
}

func checkMembers(t contractT, at string, val any, typ reflect.Type, raw []byte) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch {
	case typ == reflect.TypeFor[dotnetTime]():
	case typ.Kind() == reflect.Struct:
		obj, ok := val.(map[string]any)
		require.True(t, ok, "%s must be an object: %s", at, raw)
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" || !f.IsExported() {
				continue
			}
			member, present := obj[name]
			if !present {
				for k := range obj {
					require.False(t, strings.EqualFold(k, name), "%s.%s is spelt %q: %s", at, name, k, raw)
				}
				require.NotEqual(t, "required", f.Tag.Get("contract"), "%s.%s is required: %s", at, name, raw)
				continue
			}
			if member == nil {
				require.Equal(t, reflect.Pointer, f.Type.Kind(), "%s.%s may not be null: %s", at, name, raw)
				continue
			}
			checkMembers(t, at+"."+name, member, f.Type, raw)
		}
	case typ.Kind() == reflect.Slice:
		arr, ok := val.([]any)
		require.True(t, ok, "%s must be an array: %s", at, raw)
		for i, item := range arr {
			require.NotNil(t, item, "%s[%d] may not be null", at, i)
			checkMembers(t, fmt.Sprintf("%s[%d]", at, i), item, typ.Elem(), raw)
		}
	}
}

// pvkRequest sends a PVK request as the broker does: the bearer token, JSON for a body.
func (s *testServer) pvkRequest(method, path, token string, body any, header http.Header) response {
	s.t.Helper()
	h := http.Header{"Authorization": {"Bearer " + token}}
	for k, v := range header {
		h[k] = v
	}
	if body == nil {
		return s.do(method, path, "", nil, h)
	}
	b, err := json.Marshal(body)
	require.NoError(s.t, err)
	return s.do(method, path, "application/json; charset=utf-8", b, h)
}

// requirePVKCorrelation checks that an answer carries its korrelasjonsId in both headers.
func requirePVKCorrelation(t *testing.T, r response) string {
	t.Helper()
	id := r.header.Get(gateway.PVKCorrelationHeader)
	require.True(t, correlation.Valid(id), "CorrelationId %q", id)
	require.Equal(t, r.header.Get(correlation.Header), id)
	return id
}

// brokerQuery is the query string the broker builds (FormUrlEncodedContent, in its order).
func brokerQuery(guid, partKode string, pagingReference int32) string {
	return "definisjonGuid=" + url.QueryEscape(guid) + "&partKode=" + url.QueryEscape(partKode) + "&pagingReference=" + fmt.Sprint(pagingReference)
}

func TestPVKContractOperations(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	def := pvk.DemoDefinition
	fnr := validFnr(40)

	// Every layout a client may use: the real one, the alias, and either in another case.
	layouts := []struct {
		name string
		path func(op string) string
	}{
		{"real", pvkPath},
		{"alias", func(op string) string { return pvkBase + op }},
		{"real, lower case", func(op string) string { return strings.ToLower(pvkPath(op)) }},
		{"real, Helsenorge's case", func(op string) string {
			return "/personvern/PersonvernInnstillinger/" + op + "/V2"
		}},
		{"alias, upper case", func(op string) string { return strings.ToUpper(pvkBase + op) }},
	}
	for i, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			// SettInnbyggersPersonvernInnstilling: the broker's body (no evidence: WhenWritingNull leaves it out).
			aktiv := i%2 == 0
			set := map[string]any{"innbyggerFnr": fnr, "definisjonGuid": def.GUID, "definisjonNavn": def.Navn, "partKode": def.PartKode,
				"typePi": def.TypePi, "aktiv": aktiv, "tidspunkt": "2023-12-07T08:05:39Z"}
			r := s.pvkRequest(http.MethodPost, l.path("SettInnbyggersPersonvernInnstilling"), tok, set, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			requirePVKCorrelation(t, r)
			var sett brokerSett
			contractDecode(t, r.raw, &sett)
			require.Equal(t, "ok", sett.ReturKode)
			require.Contains(t, []string{"endret", "ikkeEndret"}, sett.InstansEndret)

			// SjekkInnbyggersPiStatus: aktiv at top level.
			r = s.pvkRequest(http.MethodPost, l.path("SjekkInnbyggersPiStatus"), tok,
				map[string]any{"innbyggerFnr": fnr, "definisjonGuid": def.GUID, "partKode": def.PartKode}, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			requirePVKCorrelation(t, r)
			var status piStatus
			contractDecode(t, r.raw, &status)
			require.Equal(t, aktiv, status.Aktiv)
			require.Equal(t, fnr, status.InnbyggerFnr)
			require.Equal(t, def.GUID, status.DefinisjonGuid)
			require.Equal(t, def.PartKode, status.PartKode)
			require.Equal(t, def.TypePi, status.TypePi)
			require.NotNil(t, status.Sekvensnummer)
			require.NotNil(t, status.SistEndretTidspunkt)

			// HentInnbyggersPiForPart.
			r = s.pvkRequest(http.MethodPost, l.path("HentInnbyggersPiForPart"), tok, map[string]any{"innbyggerFnr": fnr, "partKode": def.PartKode}, nil)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			requirePVKCorrelation(t, r)
			var forPart piForPart
			contractDecode(t, r.raw, &forPart)
			if aktiv {
				require.Len(t, forPart.PersonvernInnstillinger, 1)
				require.Equal(t, fnr, forPart.PersonvernInnstillinger[0].InnbyggerFnr)
			} else {
				require.Empty(t, forPart.PersonvernInnstillinger)
			}

			// HentInnbyggereAktivePiForDefinisjon: GET with the broker's query, and POST with a JSON body.
			get := s.pvkRequest(http.MethodGet, l.path("HentInnbyggereAktivePiForDefinisjon")+"?"+brokerQuery(def.GUID, def.PartKode, 0), tok, nil, nil)
			post := s.pvkRequest(http.MethodPost, l.path("HentInnbyggereAktivePiForDefinisjon"), tok,
				map[string]any{"definisjonGuid": def.GUID, "partKode": def.PartKode, "pagingReference": 0}, nil)
			for _, r := range []response{get, post} {
				require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
				requirePVKCorrelation(t, r)
				var page brokerHentInnbyggere
				contractDecode(t, r.raw, &page)
				require.Equal(t, def.GUID, *page.DefinisjonGuid)
				require.Equal(t, def.Navn, *page.DefinisjonNavn)
				require.Equal(t, def.PartKode, *page.PartKode)
				require.Equal(t, def.TypePi, *page.TypePi)
				require.Len(t, page.ReFasteMetadata.OmfangElementer, len(def.Omfang))
				for k, o := range def.Omfang {
					got := page.ReFasteMetadata.OmfangElementer[k]
					require.Equal(t, []string{o.Kode, o.Logisk, o.Presisering}, []string{*got.OmfangKode, *got.LogiskOmfang, *got.Presisering})
				}
				require.Zero(t, page.PagingReference, "one page")
				if aktiv {
					require.Len(t, page.PersonvernInnstillinger, 1)
					pi := page.PersonvernInnstillinger[0]
					require.Equal(t, fnr, pi.InnbyggerFnr)
					require.Positive(t, pi.Sekvensnummer)
					require.False(t, pi.SistEndretTidspunkt.Before(pi.OpprettetTidspunkt.Time))
				} else {
					require.Empty(t, page.PersonvernInnstillinger)
				}
			}
		})
	}

	// A citizen without a setting: aktiv false, nothing else made up.
	r := s.pvkRequest(http.MethodPost, pvkPath("SjekkInnbyggersPiStatus"), tok, map[string]any{"innbyggerFnr": validFnr(41), "definisjonGuid": def.GUID}, nil)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	var none piStatus
	contractDecode(t, r.raw, &none)
	require.False(t, none.Aktiv)
	require.Nil(t, none.Sekvensnummer)
	require.Nil(t, none.OpprettetTidspunkt)
	require.NotContains(t, s.logs.String(), fnr, "an fnr never reaches the logs")
}

// The broker's initial sync: GET with its query (no pageSize: the default page) until pagingReference 0,
// across two pages, every answer read strictly.
func TestPVKContractBrokerPagedSync(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	client := pvkv1.NewPrivacySettingsServiceClient(s.conn)
	const n = 501 // the default page is 500
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				_, err := client.SettInnbyggersPersonvernInnstilling(ctx, &pvkv1.SettInnbyggersPersonvernInnstillingRequest{
					InnbyggerFnr: validFnr(1000 + i), DefinisjonGuid: pvk.DemoDefinition.GUID, PartKode: pvk.DemoDefinition.PartKode,
					TypePi: "samtykke", Aktiv: proto.Bool(true), Tidspunkt: "2026-11-22T10:00:00Z"})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	seen := map[string]bool{}
	var ref int32
	pages := 0
	for {
		path := "/personvern/Personverninnstillinger/HentInnbyggereAktivePiForDefinisjon/v2?" + brokerQuery(pvk.DemoDefinition.GUID, "DEMO", ref)
		r := s.pvkRequest(http.MethodGet, path, tok, nil, nil)
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		var page brokerHentInnbyggere
		contractDecode(t, r.raw, &page)
		for _, pi := range page.PersonvernInnstillinger {
			require.False(t, seen[pi.InnbyggerFnr], "a citizen once")
			seen[pi.InnbyggerFnr] = true
		}
		pages++
		if ref = page.PagingReference; ref == 0 {
			break
		}
	}
	require.Len(t, seen, n)
	require.Equal(t, 2, pages)
}

// Errors have PVK's shape and the real codes where clients act on them.
func TestPVKContractErrors(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	def := pvk.DemoDefinition
	fnr := validFnr(60)
	wrongDigit := fnr[:10] + fmt.Sprint((int(fnr[10]-'0')+1)%10)
	set := func(mod func(map[string]any)) map[string]any {
		b := map[string]any{"innbyggerFnr": fnr, "definisjonGuid": def.GUID, "definisjonNavn": def.Navn, "partKode": def.PartKode,
			"typePi": def.TypePi, "aktiv": true, "tidspunkt": "2023-12-07T08:05:39Z"}
		mod(b)
		return b
	}
	tests := []struct {
		name, method, path string
		body               any
		token              string
		status             int
		code               string
	}{
		{"set, partKode of another party", http.MethodPost, pvkPath("SettInnbyggersPersonvernInnstilling"),
			set(func(b map[string]any) { b["partKode"] = "norpreg" }), tok, 400, "EPVK-101500"},
		{"status, partKode of another party", http.MethodPost, pvkPath("SjekkInnbyggersPiStatus"),
			map[string]any{"innbyggerFnr": fnr, "definisjonGuid": def.GUID, "partKode": "norpreg"}, tok, 400, "EPVK-101500"},
		{"list, partKode of another party", http.MethodGet,
			pvkPath("HentInnbyggereAktivePiForDefinisjon") + "?" + brokerQuery(def.GUID, "norpreg", 0), nil, tok, 400, "EPVK-101500"},
		{"list by POST, partKode of another party", http.MethodPost, pvkPath("HentInnbyggereAktivePiForDefinisjon"),
			map[string]any{"definisjonGuid": def.GUID, "partKode": "norpreg"}, tok, 400, "EPVK-101500"},
		{"set, wrong check digit", http.MethodPost, pvkPath("SettInnbyggersPersonvernInnstilling"),
			set(func(b map[string]any) { b["innbyggerFnr"] = wrongDigit }), tok, 400, "EPVK-100002"},
		{"list, unknown definition", http.MethodGet,
			pvkPath("HentInnbyggereAktivePiForDefinisjon") + "?" + brokerQuery("6f1c2d3e-0000-4000-8000-00000000dead", "DEMO", 0), nil, tok, 404, "EPVK-100011"},
		{"pagingReference not a number", http.MethodGet,
			pvkPath("HentInnbyggereAktivePiForDefinisjon") + "?definisjonGuid=" + def.GUID + "&partKode=DEMO&pagingReference=neste", nil, tok, 400, "EPVK-101001"},
		{"no token", http.MethodGet, strings.ToLower(pvkPath("HentInnbyggereAktivePiForDefinisjon")) + "?" + brokerQuery(def.GUID, "DEMO", 0),
			nil, "", 401, "EPVK-101401"},
		{"GET on a POST operation", http.MethodGet, "/personvern/personverninnstillinger/settinnbyggerspersonverninnstilling/v2", nil, tok, 405, "EPVK-101405"},
		{"no such operation", http.MethodPost, "/personvern/Personverninnstillinger/SlettAlt/v2", map[string]any{}, tok, 404, "EPVK-101404"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.pvkRequest(tt.method, tt.path, tt.token, tt.body, nil)
			require.Equal(t, tt.status, r.status, "%s", r.raw)
			id := requirePVKCorrelation(t, r)
			var e brokerError
			contractDecode(t, r.raw, &e)
			require.Equal(t, tt.code, e.Code)
			require.NotEmpty(t, e.Message)
			require.NotEmpty(t, e.ErrorCategory)
			require.Equal(t, id, e.KorrelasjonsID)
		})
	}
	require.NotContains(t, s.logs.String(), fnr, "an fnr never reaches the logs")

	// The real PVK's CorrelationId request header is taken as the korrelasjonsId.
	id := correlation.New()
	r := s.pvkRequest(http.MethodPost, pvkPath("SjekkInnbyggersPiStatus"), tok, map[string]any{"innbyggerFnr": wrongDigit, "definisjonGuid": def.GUID},
		http.Header{gateway.PVKCorrelationHeader: {id}})
	require.Equal(t, id, requirePVKCorrelation(t, r))
	require.Equal(t, id, r.body["korrelasjonsId"])
}
