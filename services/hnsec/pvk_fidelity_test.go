package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"image"
	"image/png"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/services/pvk"
)

// brokerTestPerson is NORPREG's PVK broker's own test person: a Tenor synthetic D-number (month + 80).
const brokerTestPerson = "54896001798"

// Synthetic test persons (Tenor's month + 80, H-numbers' month + 40) are refused with their own code
// unless --accept-synthetic-fnr is set; with it, the broker's test person can be set and read back.
func TestPVKSyntheticFnr(t *testing.T) {
	hNumber := "01410100033"
	t.Run("refused without the flag", func(t *testing.T) {
		s := newTestServer(t)
		tok := s.token()
		for _, n := range []string{brokerTestPerson, hNumber} {
			r := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(n, true))
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r.raw)
			require.Equal(t, "EPVK-100004", r.body["code"])
			require.Equal(t, "innbyggerFnr is a synthetic test number (H-number or Tenor), not accepted here", r.body["message"])
			r = s.pvkCall("SjekkInnbyggersPiStatus", tok, map[string]any{"innbyggerFnr": n, "definisjonGuid": pvk.DemoDefinition.GUID})
			require.Equal(t, "EPVK-100004", r.body["code"])
		}
		require.NotContains(t, s.logs.String(), brokerTestPerson, "an fnr never reaches the logs")
	})
	t.Run("accepted with it", func(t *testing.T) {
		s := newTestServer(t, func(c *serveConfig) { c.PVK.AcceptSyntheticFnr = true })
		tok := s.token()
		for _, n := range []string{brokerTestPerson, hNumber} {
			r := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(n, true))
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			require.Equal(t, "endret", r.body["instansEndret"])
			r = s.pvkCall("HentInnbyggersPiForPart", tok, map[string]any{"innbyggerFnr": n, "partKode": "DEMO"})
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			require.Contains(t, string(r.raw), n)
		}
		// The check digits and the date still count.
		r := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody("54896001797", true))
		require.Equal(t, "EPVK-100002", r.body["code"])
		r = s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody("31048100069", true))
		require.Equal(t, "EPVK-100003", r.body["code"])
		require.NotContains(t, s.logs.String(), brokerTestPerson, "an fnr never reaches the logs")
	})
}

// Dev mode accepts synthetic test persons unless --accept-synthetic-fnr says otherwise; production does
// only when the flag is set.
func TestDevSyntheticFnrDefault(t *testing.T) {
	for _, tc := range []struct {
		name              string
		dev, given, value bool
		want              bool
	}{
		{"dev", true, false, false, true},
		{"dev, turned off", true, true, false, false},
		{"production", false, false, false, false},
		{"production, turned on", false, true, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c serveConfig
			c.Dev, c.PVK.AcceptSyntheticFnr = tc.dev, tc.value
			devSyntheticFnrDefault(&c, tc.given)
			require.Equal(t, tc.want, c.PVK.AcceptSyntheticFnr)
		})
	}
}

// Signed evidence as the real PVK takes it: PNG, JPEG, BMP and PDF of up to 4 MiB decoded, through the
// gateway's body limit of the set operation (base64, even with + written as \u002B), while PVK's other
// paths and the rest keep theirs.
func TestPVKEvidence(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	var pngBytes bytes.Buffer
	require.NoError(t, png.Encode(&pngBytes, image.NewGray(image.Rect(0, 0, 8, 8))))
	full := make([]byte, pvk.MaxEvidenceBytes)
	_, _ = rand.Read(full)
	db := s.serviceDB("pvk")
	for i, tc := range []struct {
		mime    string
		content []byte
	}{
		{"image/png", pngBytes.Bytes()},
		{"image/jpeg", []byte("\xff\xd8\xff\xe0 a JPEG")},
		{"image/bmp", []byte("BM a bitmap")},
		{"application/pdf", []byte("%PDF-1.7 a PDF")},
		{"image/png", full}, // exactly 4 MiB
	} {
		n := validFnr(100 + i)
		b := setBody(n, true)
		b["signertBevisMimeType"], b["signertBevisInnhold"] = tc.mime, base64.StdEncoding.EncodeToString(tc.content)
		r := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, b)
		require.Equal(t, http.StatusOK, r.status, "%s: %.300s", tc.mime, r.raw)
		var mime string
		var stored []byte
		require.NoError(t, db.QueryRow(`SELECT evidence_mime, evidence FROM settings WHERE fnr = ?`, n).Scan(&mime, &stored))
		require.Equal(t, tc.mime, mime)
		require.Equal(t, tc.content, stored)
	}

	// 4 MiB as System.Text.Json sends it by default, every + escaped: still within the body limit.
	b := setBody(validFnr(110), true)
	b["signertBevisMimeType"], b["signertBevisInnhold"] = "image/png", "EVIDENCE"
	raw, err := json.Marshal(b)
	require.NoError(t, err)
	escaped := strings.ReplaceAll(base64.StdEncoding.EncodeToString(full), "+", `\u002B`)
	raw = bytes.Replace(raw, []byte(`"EVIDENCE"`), []byte(`"`+escaped+`"`), 1)
	r := s.do(http.MethodPost, pvkBase+"SettInnbyggersPersonvernInnstilling", "application/json", raw, http.Header{"Authorization": {"Bearer " + tok}})
	require.Equal(t, http.StatusOK, r.status, "%.300s", r.raw)

	tooLarge := setBody(validFnr(111), true)
	tooLarge["signertBevisMimeType"], tooLarge["signertBevisInnhold"] = "image/png", base64.StdEncoding.EncodeToString(make([]byte, pvk.MaxEvidenceBytes+1))
	wrongType := setBody(validFnr(112), true)
	wrongType["signertBevisMimeType"], wrongType["signertBevisInnhold"] = "image/gif", base64.StdEncoding.EncodeToString([]byte("GIF89a"))
	for _, tc := range []struct {
		name, path string
		body       any
		status     int
		code, msg  string
	}{
		{"evidence over 4 MiB", pvkBase + "SettInnbyggersPersonvernInnstilling", tooLarge, 400, "EPVK-100032", "signertBevisInnhold is larger than 4 MiB"},
		{"evidence of another type", pvkBase + "SettInnbyggersPersonvernInnstilling", wrongType, 400, "EPVK-100030",
			"signertBevisMimeType must be one of image/png, image/jpeg, image/bmp, application/pdf, application/xml, application/json, application/jose, text/plain"},
		{"set body over 7 MiB", "/personvern/personverninnstillinger/settinnbyggerspersonverninnstilling/v2",
			map[string]any{"x": strings.Repeat("a", 7<<20)}, 413, "EPVK-101413", "request body is larger than 7 MiB"},
		{"other PVK operations keep 512 KiB", pvkBase + "SjekkInnbyggersPiStatus", map[string]any{"x": strings.Repeat("a", 600<<10)}, 413,
			"EPVK-101413", "request body is larger than 512 KiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(tc.body)
			require.NoError(t, err)
			r := s.do(http.MethodPost, tc.path, "application/json", raw, http.Header{"Authorization": {"Bearer " + tok}})
			require.Equal(t, tc.status, r.status, "%.300s", r.raw)
			require.Equal(t, tc.code, r.body["code"])
			require.Equal(t, tc.msg, r.body["message"])
		})
	}
	// Outside PVK the limit stays 64 KiB.
	r = s.do(http.MethodPost, "/sts/Token", form, []byte("grant_type=client_credentials&x="+strings.Repeat("a", 65<<10)), nil)
	require.Equal(t, http.StatusRequestEntityTooLarge, r.status, "%s", r.raw)
	require.Contains(t, string(r.raw), "request body is larger than 64 KiB")
}

// sekvensnummer counts one citizen's setting for one definition from 1, as the real PVK: two definitions of
// one citizen count apart. The change events carry the deployment-wide endringsnummer, which orders them.
func TestPVKSekvensnummerCountsPerSetting(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	const other = "6f1c2d3e-0000-4000-8000-0000000000b7"
	_, err := s.admin("pvk", "definition-create", "--guid", other, "--navn", "Demo reservasjon", "--part", "DEMO", "--type", "reservasjon")
	require.NoError(t, err)
	citizen := validFnr(40)
	set := func(def string, aktiv bool) {
		t.Helper()
		b := setBody(citizen, aktiv)
		if def == other {
			b["definisjonGuid"], b["typePi"] = other, "reservasjon"
		}
		r := s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, b)
		require.Equal(t, "endret", r.body["instansEndret"], "%s", r.raw)
	}
	demo := pvk.DemoDefinition.GUID
	set(demo, true)
	set(other, true)
	set(demo, false)
	set(demo, true)
	set(other, false)

	wantSeq := []float64{1, 1, 2, 3, 2}
	for i, m := range s.streamEvents(len(wantSeq)) {
		var ev struct {
			Endringsnummer int64 `json:"endringsnummer"`
			Data           struct {
				Sekvensnummer  float64 `json:"sekvensnummer"`
				DefinisjonGUID string  `json:"definisjonGuid"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(m.Data(), &ev))
		require.Equal(t, int64(i+1), ev.Endringsnummer, "the endringsnummer orders every change")
		require.Equal(t, wantSeq[i], ev.Data.Sekvensnummer, "change %d (%s)", i+1, ev.Data.DefinisjonGUID)
	}
	for def, want := range map[string]string{demo: `"sekvensnummer":3`, other: `"sekvensnummer":2`} {
		r := s.pvkCall("SjekkInnbyggersPiStatus", tok, map[string]any{"innbyggerFnr": citizen, "definisjonGuid": def})
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		require.Contains(t, string(r.raw), want)
	}
}

// A citizen's inclusion with a party is set (endret, then ikkeEndret), read back, refused with its exact
// errors, and replicated to subscribers like a setting, with its own sekvensnummer and the endringsnummer.
func TestPVKInclusion(t *testing.T) {
	s := newTestServer(t)
	tok := s.token()
	r := s.subCall(http.MethodPost, "", tok, map[string]any{"filters": map[string]any{"partKoder": []string{"DEMO"}}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	sub := r.body["subscription"].(map[string]any)["subscriptionId"].(string)

	citizen := validFnr(50)
	call := func(path string, body map[string]any) response {
		t.Helper()
		raw, err := json.Marshal(body)
		require.NoError(t, err)
		return s.do(http.MethodPost, path, "application/json", raw, http.Header{"Authorization": {"Bearer " + tok}})
	}
	const setPath, getPath = "/personvern/v1/settinnbyggersinkludering", "/personvern/v1/hentinnbyggersinkludering"
	set := func(typ string, aktiv bool) string {
		t.Helper()
		r := call(setPath, map[string]any{"innbyggerFnr": citizen, "partKode": "DEMO", "inkluderingType": typ, "aktiv": aktiv})
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		require.Equal(t, "ok", r.body["returKode"])
		return r.body["instansEndret"].(string)
	}
	require.Equal(t, "endret", set("inkludert", true))
	require.Equal(t, "ikkeEndret", set("inkludert", true))
	require.Equal(t, "endret", set("deltager", true))
	require.Equal(t, "endret", set("inkludert", false))
	// The path matches without regard to case, as PVK's others.
	r = call("/personvern/V1/SettInnbyggersInkludering", map[string]any{"innbyggerFnr": citizen, "partKode": "DEMO", "inkluderingType": "oppfort",
		"aktiv": true})
	require.Equal(t, "endret", r.body["instansEndret"], "%s", r.raw)

	got := call(getPath, map[string]any{"innbyggerFnr": citizen, "partKode": "DEMO"})
	require.Equal(t, http.StatusOK, got.status, "%s", got.raw)
	list := got.body["inkluderinger"].([]any)
	require.Len(t, list, 3)
	byType := map[string]map[string]any{}
	for _, x := range list {
		byType[x.(map[string]any)["inkluderingType"].(string)] = x.(map[string]any)
	}
	require.Equal(t, false, byType["inkludert"]["aktiv"])
	require.Equal(t, float64(2), byType["inkludert"]["sekvensnummer"])
	require.Equal(t, true, byType["deltager"]["aktiv"])
	require.Equal(t, float64(1), byType["deltager"]["sekvensnummer"])
	require.NotEmpty(t, byType["oppfort"]["sistEndretTidspunkt"])
	none := call(getPath, map[string]any{"innbyggerFnr": citizen, "partKode": "ANNEN"})
	require.Equal(t, []any{}, none.body["inkluderinger"])

	for _, tc := range []struct {
		name      string
		body      map[string]any
		code, msg string
	}{
		{"unknown type", map[string]any{"innbyggerFnr": citizen, "partKode": "DEMO", "inkluderingType": "medlem", "aktiv": true}, "EPVK-100080",
			"inkluderingType must be inkludert, deltager or oppfort"},
		{"aktiv missing", map[string]any{"innbyggerFnr": citizen, "partKode": "DEMO", "inkluderingType": "inkludert"}, "EPVK-100021",
			"aktiv is required (true or false)"},
		{"partKode missing", map[string]any{"innbyggerFnr": citizen, "inkluderingType": "inkludert", "aktiv": true}, "EPVK-100040",
			"partKode must be 1 to 100 characters"},
		{"wrong check digit", map[string]any{"innbyggerFnr": "01010150154", "partKode": "DEMO", "inkluderingType": "inkludert", "aktiv": true},
			"EPVK-100002", "innbyggerFnr has a wrong check digit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := call(setPath, tc.body)
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r.raw)
			require.Equal(t, tc.code, r.body["code"])
			require.Equal(t, tc.msg, r.body["message"])
		})
	}

	// Replicated: every change, in order, as CloudEvents of the inclusion type.
	var events []map[string]any
	require.EventuallyWithT(t, func(c *assertCollect) {
		e, _ := s.pullEvents(tok, sub, 100)
		events = append(events, e...)
		require.Len(c, events, 4)
	}, 5*time.Second, 50*time.Millisecond)
	for i, ev := range events {
		require.Equal(t, pvk.InclusionEventType, ev["type"])
		require.Equal(t, float64(i+1), ev[pvk.EndringsnummerAttribute])
		require.Equal(t, citizen, ev["data"].(map[string]any)["innbyggerFnr"])
	}
	require.Equal(t, []any{"inkludert", 1.0, true}, []any{events[0]["data"].(map[string]any)["inkluderingType"],
		events[0]["data"].(map[string]any)["sekvensnummer"], events[0]["data"].(map[string]any)["aktiv"]})
	require.Equal(t, 2.0, events[2]["data"].(map[string]any)["sekvensnummer"])
	require.NotContains(t, s.logs.String(), citizen, "an fnr never reaches the logs")
}

// Between processes, a gateway of its own reaches PVK over gRPC: 4 MiB of evidence fits the gRPC message
// limit too (gRPC's default of 4 MiB would refuse the 5.3 MiB request).
func TestPVKEvidenceThroughASeparateGateway(t *testing.T) {
	a := newTestServer(t, func(c *serveConfig) { c.NATSListen = "127.0.0.1:0" })
	b := newTestServer(t, func(c *serveConfig) {
		c.Services, c.Dev = "gateway", false
		c.PeerAddr, c.NATSURL = a.cfg.GRPCAddr, a.natsURL
		c.DataDir = a.cfg.DataDir // the same credentials
		c.KEKFile = filepath.Join(a.cfg.DataDir, "kek")
	})
	tok := a.token()
	full := make([]byte, pvk.MaxEvidenceBytes)
	_, _ = rand.Read(full)
	body := setBody(validFnr(60), true)
	body["signertBevisMimeType"], body["signertBevisInnhold"] = "application/pdf", base64.StdEncoding.EncodeToString(full)
	r := b.pvkCall("SettInnbyggersPersonvernInnstilling", tok, body)
	require.Equal(t, http.StatusOK, r.status, "%.300s", r.raw)
	require.Equal(t, "endret", r.body["instansEndret"])
}
