package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/services/pvk"
)

// pvkBase is the alias layout of PVK's paths (version before operation); pvkPath gives the real one.
const pvkBase = "/personvern/Personverninnstillinger/v2/"

// pvkPath is the real PVK path of an operation: /personvern/Personverninnstillinger/{Operasjon}/v2.
func pvkPath(op string) string { return "/personvern/Personverninnstillinger/" + op + "/v2" }

// pvkCall posts a PVK operation with the token, on the real path.
func (s *testServer) pvkCall(op, token string, body any) response {
	s.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(s.t, err)
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return s.do(http.MethodPost, pvkPath(op), "application/json", b, h)
}

// validFnr returns the i-th synthetic fødselsnummer (both check digits computed).
func validFnr(i int) string {
	for n := i; ; n += 100000 {
		base := fmt.Sprintf("010101%03d", n%1000)
		if n >= 1000 {
			base = fmt.Sprintf("%02d%02d%02d%03d", 1+(n/1000)%28, 1+(n/28000)%12, 50+(n/336000)%50, n%1000)
		}
		d := make([]int, 11)
		for k := range 9 {
			d[k] = int(base[k] - '0')
		}
		k1 := check(d[:9], []int{3, 7, 6, 1, 8, 9, 4, 5, 2})
		if k1 < 0 {
			continue
		}
		d[9] = k1
		k2 := check(d[:10], []int{5, 4, 3, 2, 7, 6, 5, 4, 3, 2})
		if k2 < 0 {
			continue
		}
		return fmt.Sprintf("%s%d%d", base, k1, k2)
	}
}

func check(d, w []int) int {
	sum := 0
	for i := range w {
		sum += d[i] * w[i]
	}
	c := 11 - sum%11
	switch c {
	case 11:
		return 0
	case 10:
		return -1
	}
	return c
}

func setBody(fnr string, aktiv bool) map[string]any {
	return map[string]any{"innbyggerFnr": fnr, "definisjonGuid": pvk.DemoDefinition.GUID, "definisjonNavn": "Demo samtykke",
		"partKode": "DEMO", "typePi": "samtykke", "aktiv": aktiv, "tidspunkt": "2026-11-22T10:00:00Z"}
}

func TestPVKSetCheckAndFetch(t *testing.T) {
	// JetStream syncs every 100 ms, so the outbox keeps a published change for 1.2 s.
	s := newTestServer(t, func(c *serveConfig) { c.NATSSync = natsbus.Sync(100 * time.Millisecond) })
	tok := s.token() // the demo client has the read and write scopes
	fnr := validFnr(1)

	r := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(fnr, true))
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	require.Equal(t, map[string]any{"returKode": "ok", "instansEndret": "endret"}, r.body)
	r = s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(fnr, true))
	require.Equal(t, "ikkeEndret", r.body["instansEndret"], "the same state again changes nothing")

	st := s.pvkCall("SjekkInnbyggersPiStatus", tok, map[string]any{"innbyggerFnr": fnr, "definisjonGuid": pvk.DemoDefinition.GUID})
	require.Equal(t, http.StatusOK, st.status, "%s", st.raw)
	p := st.body // the setting's members at top level, as PVK answers
	require.Equal(t, true, p["aktiv"])
	require.Equal(t, "samtykke", p["typePi"])
	require.Equal(t, "DEMO", p["partKode"])
	require.Equal(t, "2026-11-22T10:00:00Z", p["tidspunkt"])
	seq := p["sekvensnummer"].(float64) // a JSON number, as PVK sends it
	require.Contains(t, string(st.raw), `"sekvensnummer":`+fmt.Sprint(int64(seq)))
	require.NotEmpty(t, p["opprettetTidspunkt"])

	r = s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(fnr, false))
	require.Equal(t, "endret", r.body["instansEndret"])
	p = s.pvkCall("SjekkInnbyggersPiStatus", tok, map[string]any{"innbyggerFnr": fnr, "definisjonGuid": pvk.DemoDefinition.GUID}).body
	require.Equal(t, false, p["aktiv"])
	require.Greater(t, p["sekvensnummer"].(float64), seq, "every change takes the next sekvensnummer")

	// A citizen with no setting: aktiv false.
	none := s.pvkCall("SjekkInnbyggersPiStatus", tok, map[string]any{"innbyggerFnr": validFnr(2), "definisjonGuid": pvk.DemoDefinition.GUID})
	require.Equal(t, false, none.body["aktiv"])
	require.NotContains(t, none.body, "sekvensnummer", "no setting, no sekvensnummer")

	// Active settings for a party.
	s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(validFnr(3), true))
	forPart := s.pvkCall("HentInnbyggersPiForPart", tok, map[string]any{"innbyggerFnr": validFnr(3), "partKode": "DEMO"})
	require.Len(t, forPart.body["personvernInnstillinger"], 1)
	forPart = s.pvkCall("HentInnbyggersPiForPart", tok, map[string]any{"innbyggerFnr": fnr, "partKode": "DEMO"})
	require.Empty(t, forPart.body["personvernInnstillinger"], "inactive settings are not listed")

	// Every change, and only changes, reached the change stream through the outbox, as CloudEvents with
	// Nats-Msg-Id = event id on the citizen's partition subject; the outbox is empty once the stream synced.
	events := s.streamEvents(3)
	require.Len(t, events, 3)
	for i, m := range events {
		var ev map[string]any
		require.NoError(t, json.Unmarshal(m.Data(), &ev))
		require.Equal(t, "1.0", ev["specversion"])
		require.Equal(t, pvk.EventType, ev["type"])
		require.Equal(t, ev["id"], m.Headers().Get("Nats-Msg-Id"))
		require.True(t, strings.HasPrefix(m.Subject(), pvk.SubjectPrefix))
		require.NotContains(t, m.Subject(), fnr)
		data := ev["data"].(map[string]any)
		require.Equal(t, float64(i+1), ev[pvk.EndringsnummerAttribute], "the endringsnummer counts the deployment's changes")
		require.Equal(t, []any{1.0, 2.0, 1.0}[i], data["sekvensnummer"], "the sekvensnummer counts one citizen's setting")
		if i < 2 {
			require.Equal(t, fnr, data["innbyggerFnr"])
			require.Equal(t, events[0].Subject(), m.Subject(), "one citizen, one partition")
		}
	}
	db := s.serviceDB("pvk")
	require.EventuallyWithT(t, func(c *assertCollect) {
		var rows int
		require.NoError(c, db.QueryRow(`SELECT COUNT(*) FROM outbox`).Scan(&rows))
		require.Zero(c, rows, "the relay clears the outbox once the stream synced what it acknowledged")
	}, 5*time.Second, 10*time.Millisecond)
	require.NotContains(t, s.logs.String(), fnr, "an fnr never reaches the logs")
}

func TestPVKBadInput(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	fnr := validFnr(1)
	with := func(mod func(map[string]any)) map[string]any {
		b := setBody(fnr, true)
		mod(b)
		return b
	}
	big := base64.StdEncoding.EncodeToString(make([]byte, pvk.MaxEvidenceBytes+1))
	tests := []struct {
		name   string
		body   any
		status int
		code   string
		msg    string
	}{
		{"fnr too short", with(func(b map[string]any) { b["innbyggerFnr"] = "0101015015" }), 400, "EPVK-100001", "innbyggerFnr must be 11 digits"},
		{"fnr check digit", with(func(b map[string]any) { b["innbyggerFnr"] = fnr[:10] + fmt.Sprint((int(fnr[10]-'0')+1)%10) }), 400, "EPVK-100002",
			"innbyggerFnr has a wrong check digit"},
		{"fnr date", with(func(b map[string]any) { b["innbyggerFnr"] = "01130150155" }), 400, "EPVK-100003", "innbyggerFnr does not start with a valid date"},
		{"definisjonGuid", with(func(b map[string]any) { b["definisjonGuid"] = "demo" }), 400, "EPVK-100010", "definisjonGuid must be a GUID"},
		{"unknown definition", with(func(b map[string]any) { b["definisjonGuid"] = "6f1c2d3e-0000-4000-8000-00000000dead" }), 404, "EPVK-100011",
			"no definition with this definisjonGuid"},
		{"typePi unknown", with(func(b map[string]any) { b["typePi"] = "lov" }), 400, "EPVK-100013", "typePi must be samtykke, reservasjon or tilgangsbegrensning"},
		{"typePi mismatch", with(func(b map[string]any) { b["typePi"] = "reservasjon" }), 400, "EPVK-100012", "typePi does not match the definition (samtykke)"},
		{"tidspunkt", with(func(b map[string]any) { b["tidspunkt"] = "22.11.2026" }), 400, "EPVK-100020", "tidspunkt must be an RFC 3339 time, e.g. 2026-11-22T10:00:00Z"},
		{"evidence type", with(func(b map[string]any) { b["signertBevisMimeType"], b["signertBevisInnhold"] = "image/gif", "AAAA" }), 400, "EPVK-100030",
			"signertBevisMimeType must be one of image/png, image/jpeg, image/bmp, application/pdf, application/xml, application/json, application/jose, text/plain"},
		{"evidence not base64", with(func(b map[string]any) { b["signertBevisMimeType"], b["signertBevisInnhold"] = "text/plain", "!!" }), 400, "EPVK-100031",
			"signertBevisInnhold must be base64"},
		{"evidence too large", with(func(b map[string]any) { b["signertBevisMimeType"], b["signertBevisInnhold"] = "text/plain", big }), 400, "EPVK-100032",
			"signertBevisInnhold is larger than 4 MiB"},
		{"evidence without type", with(func(b map[string]any) { b["signertBevisInnhold"] = "AAAA" }), 400, "EPVK-100033",
			"signertBevisMimeType and signertBevisInnhold go together"},
		// A required field that is missing, or misspelt (unknown fields are ignored, as the real PVK does), is
		// refused rather than defaulted.
		{"aktiv misspelt", with(func(b map[string]any) { delete(b, "aktiv"); b["aktivv"] = true }), 400, "EPVK-100021", "aktiv is required (true or false)"},
		{"aktiv missing", with(func(b map[string]any) { delete(b, "aktiv") }), 400, "EPVK-100021", "aktiv is required (true or false)"},
		{"innbyggerFnr missing", with(func(b map[string]any) { delete(b, "innbyggerFnr") }), 400, "EPVK-100001", "innbyggerFnr is required"},
		{"definisjonGuid missing", with(func(b map[string]any) { delete(b, "definisjonGuid") }), 400, "EPVK-100010", "definisjonGuid is required"},
		{"typePi missing", with(func(b map[string]any) { delete(b, "typePi") }), 400, "EPVK-100013", "typePi is required"},
		{"tidspunkt missing", with(func(b map[string]any) { delete(b, "tidspunkt") }), 400, "EPVK-100020", "tidspunkt is required"},
		{"oversize body", with(func(b map[string]any) { b["x"] = strings.Repeat("a", 7<<20) }), 413, "EPVK-101413", "request body is larger than 7 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, tt.body)
			require.Equal(t, tt.status, r.status, "%s", r.raw)
			require.Equal(t, tt.code, r.body["code"])
			require.Equal(t, tt.msg, r.body["message"])
			require.NotEmpty(t, r.body["errorCategory"])
			require.Equal(t, r.header.Get("X-Correlation-Id"), r.body["korrelasjonsId"])
		})
	}
	// Unknown fields are ignored; evidence within limits is accepted.
	ok := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, with(func(b map[string]any) {
		b["ukjentFelt"] = 1
		b["signertBevisMimeType"], b["signertBevisInnhold"] = "application/json", base64.StdEncoding.EncodeToString([]byte(`{"signert":true}`))
	}))
	require.Equal(t, http.StatusOK, ok.status, "%s", ok.raw)
}

func TestPVKAccessNeedsTheScopes(t *testing.T) {
	s := newTestServer(t)
	created, err := s.admin("client", "create", "--name", "Leser", "--orgnr", "971000007", "--scope", "nhn:helsenorge.eksternapi/personverninnstilling_read", "-o", "json")
	require.NoError(t, err)
	var reader map[string]any
	require.NoError(t, json.Unmarshal([]byte(created), &reader))
	readTok := s.tokenForm(reader["client_id"].(string), reader["client_secret"].(string)).body["access_token"].(string)

	r := s.pvkCall("SettInnbyggersPersonvernInnstilling", readTok, setBody(validFnr(1), true))
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, "EPVK-101403", r.body["code"])
	require.Equal(t, "the access token lacks scope nhn:helsenorge.eksternapi/personverninnstilling_write", r.body["message"])
	r = s.pvkCall("SjekkInnbyggersPiStatus", readTok, map[string]any{"innbyggerFnr": validFnr(1), "definisjonGuid": pvk.DemoDefinition.GUID})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)

	r = s.pvkCall("SjekkInnbyggersPiStatus", "", map[string]any{})
	require.Equal(t, http.StatusUnauthorized, r.status)
	require.Equal(t, "EPVK-101401", r.body["code"])
	r = s.pvkCall("SjekkInnbyggersPiStatus", "not.a.token", map[string]any{})
	require.Equal(t, "the access token is not active", r.body["message"])

	// Definitions are the operator's.
	_, err = s.admin("pvk", "definition-create", "--guid", "6f1c2d3e-0000-4000-8000-0000000000b2", "--navn", "Reservasjon mot X",
		"--part", "X", "--type", "reservasjon", "--omfang", "X1:Alt:Ingen")
	require.NoError(t, err)
	_, err = s.admin("pvk", "definition-create", "--guid", "6f1c2d3e-0000-4000-8000-0000000000b2", "--navn", "Igjen", "--part", "X", "--type", "reservasjon")
	require.EqualError(t, err, "already_exists: a definition with this definisjonGuid exists")
	_, err = s.admin("pvk", "definition-create", "--guid", "6f1c2d3e-0000-4000-8000-0000000000b3", "--navn", "N", "--part", "X", "--type", "lov")
	require.EqualError(t, err, "invalid_request: typePi must be samtykke, reservasjon or tilgangsbegrensning")
	defs := s.do(http.MethodGet, "/pvk/v1/definitions", "", nil, http.Header{"Authorization": {"Bearer " + readTok}})
	require.Equal(t, http.StatusOK, defs.status, "%s", defs.raw)
	require.Len(t, defs.body["definisjoner"], 2)
}

// The initial sync a new subscriber runs: 10,000 active settings, paged with pagingReference until 0.
func TestPVKInitialSyncPagesThrough10000Settings(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
	client := pvkv1.NewPrivacySettingsServiceClient(s.conn)
	const n = 10000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				_, err := client.SettInnbyggersPersonvernInnstilling(ctx, &pvkv1.SettInnbyggersPersonvernInnstillingRequest{
					InnbyggerFnr: validFnr(i), DefinisjonGuid: pvk.DemoDefinition.GUID, TypePi: "samtykke", Aktiv: proto.Bool(true), Tidspunkt: "2026-11-22T10:00:00Z"})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	seen := map[string]bool{}
	ref, pages := int64(0), 0
	for {
		r := s.pvkCall("HentInnbyggereAktivePiForDefinisjon", tok, map[string]any{"definisjonGuid": pvk.DemoDefinition.GUID,
			"pagingReference": ref, "pageSize": 1000})
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		for _, p := range r.body["personvernInnstillinger"].([]any) {
			seen[p.(map[string]any)["innbyggerFnr"].(string)] = true
		}
		pages++
		ref = int64(r.body["pagingReference"].(float64))
		if ref == 0 {
			break
		}
	}
	require.Len(t, seen, n, "every citizen exactly once")
	require.Equal(t, 10, pages, "ten full pages, the last saying 0")
}

// streamEvents waits until PVK's change stream holds n messages and returns them in stream order.
func (s *testServer) streamEvents(n int) []jetstream.Msg {
	s.t.Helper()
	js, err := jetstream.New(s.nc)
	require.NoError(s.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.EventuallyWithT(s.t, func(c *assertCollect) {
		st, err := js.Stream(ctx, pvk.StreamName)
		require.NoError(c, err)
		info, err := st.Info(ctx)
		require.NoError(c, err)
		require.Equal(c, uint64(n), info.State.Msgs)
	}, 5*time.Second, 20*time.Millisecond)
	cons, err := js.OrderedConsumer(ctx, pvk.StreamName, jetstream.OrderedConsumerConfig{})
	require.NoError(s.t, err)
	batch, err := cons.FetchNoWait(n)
	require.NoError(s.t, err)
	var out []jetstream.Msg
	for m := range batch.Messages() {
		out = append(out, m)
	}
	require.NoError(s.t, batch.Error())
	return out
}
