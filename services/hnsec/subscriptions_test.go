package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/services/pvk"
)

// subCall calls the subscriptions REST API.
func (s *testServer) subCall(method, path, token string, body any) response {
	s.t.Helper()
	var b []byte
	if body != nil {
		var err error
		b, err = json.Marshal(body)
		require.NoError(s.t, err)
	}
	ct := ""
	if body != nil {
		ct = "application/json"
	}
	return s.do(method, "/pvk/v1/subscriptions"+path, ct, b, http.Header{"Authorization": {"Bearer " + token}})
}

// pull pulls up to max changes and returns the events' data and the ack ids.
func (s *testServer) pull(token, id string, max int) ([]map[string]any, []string) {
	s.t.Helper()
	events, acks := s.pullEvents(token, id, max)
	var data []map[string]any
	for _, ev := range events {
		data = append(data, ev["data"].(map[string]any))
	}
	return data, acks
}

// pullEvents pulls changes as whole CloudEvents, with their ack ids.
func (s *testServer) pullEvents(token, id string, max int) ([]map[string]any, []string) {
	s.t.Helper()
	r := s.subCall(http.MethodPost, "/"+id+":pull", token, map[string]any{"max": max, "waitMs": 500})
	require.Equal(s.t, http.StatusOK, r.status, "%s", r.raw)
	var events []map[string]any
	var acks []string
	for _, c := range r.body["changes"].([]any) {
		ch := c.(map[string]any)
		var ev map[string]any
		require.NoError(s.t, json.Unmarshal([]byte(ch["event"].(string)), &ev))
		events = append(events, ev)
		acks = append(acks, ch["ackId"].(string))
	}
	return events, acks
}

func TestPullSubscriptionDeliversEachChangeOnceInCitizenOrder(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.PVK.AckWait = time.Second })
	tok := s.token()
	r := s.subCall(http.MethodPost, "", tok, map[string]any{"filters": map[string]any{"definisjonGuids": []string{pvk.DemoDefinition.GUID}}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	sub := r.body["subscription"].(map[string]any)
	id := sub["subscriptionId"].(string)
	require.Equal(t, s.dev.ClientID, sub["subscriberClientId"])
	require.Equal(t, "SUBSCRIPTION_STATUS_ACTIVE", sub["status"])

	// Two citizens, several changes each.
	a, b := validFnr(10), validFnr(11)
	for i := range 3 {
		for _, fnr := range []string{a, b} {
			require.Equal(t, "endret", s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(fnr, i%2 == 0)).body["instansEndret"])
		}
	}
	var events []map[string]any
	var acks []string
	require.EventuallyWithT(t, func(c *assertCollect) {
		e, ack := s.pullEvents(tok, id, 100)
		events, acks = append(events, e...), append(acks, ack...)
		require.Len(c, events, 6)
	}, 5*time.Second, 50*time.Millisecond)
	last := map[string]float64{}
	for i, ev := range events {
		d := ev["data"].(map[string]any)
		fnr, pos := d["innbyggerFnr"].(string), ev[pvk.EndringsnummerAttribute].(float64)
		require.Greater(t, pos, last[fnr], "per-citizen order by endringsnummer")
		last[fnr] = pos
		require.Equal(t, float64(i+1), pos, "the endringsnummer counts every change of the deployment")
		require.Equal(t, float64(i/2+1), d["sekvensnummer"], "the sekvensnummer counts one citizen's setting from 1")
	}
	// Unacknowledged changes come back after the ack wait; acknowledged ones never.
	r = s.subCall(http.MethodPost, "/"+id+":ack", tok, map[string]any{"ackIds": acks[:4]})
	require.Equal(t, float64(4), r.body["acked"])
	time.Sleep(1200 * time.Millisecond)
	again, acks2 := s.pullEvents(tok, id, 100)
	require.Len(t, again, 2, "the two unacknowledged changes are handed out again")
	require.Equal(t, events[4]["id"], again[0]["id"])
	r = s.subCall(http.MethodPost, "/"+id+":ack", tok, map[string]any{"ackIds": append(acks2, "unknown-ack-id")})
	require.Equal(t, float64(2), r.body["acked"])
	require.Equal(t, []any{"unknown-ack-id"}, r.body["unknown"])
	time.Sleep(1200 * time.Millisecond)
	none, _ := s.pull(tok, id, 100)
	require.Empty(t, none, "every change exactly once after acks")

	// Replay from an endringsnummer hands out the changes again from there.
	r = s.subCall(http.MethodPost, "/"+id+":replay", tok, map[string]any{"fromEndringsnummer": events[2][pvk.EndringsnummerAttribute]})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	replayed, _ := s.pullEvents(tok, id, 100)
	require.Len(t, replayed, 4)
	require.Equal(t, events[2]["id"], replayed[0]["id"])

	// Pause stops pulling; resume restarts it.
	r = s.subCall(http.MethodPost, "/"+id+":pause", tok, map[string]any{})
	require.Equal(t, "SUBSCRIPTION_STATUS_PAUSED", r.body["subscription"].(map[string]any)["status"])
	r = s.subCall(http.MethodPost, "/"+id+":pull", tok, map[string]any{})
	require.Equal(t, http.StatusConflict, r.status)
	require.Equal(t, "EPVK-100061", r.body["code"])
	r = s.subCall(http.MethodPost, "/"+id+":pause", tok, map[string]any{})
	require.Equal(t, "the subscription is SUBSCRIPTION_STATUS_PAUSED", r.body["message"])
	r = s.subCall(http.MethodPost, "/"+id+":resume", tok, map[string]any{})
	require.Equal(t, "SUBSCRIPTION_STATUS_ACTIVE", r.body["subscription"].(map[string]any)["status"])

	list := s.subCall(http.MethodGet, "", tok, nil)
	require.Len(t, list.body["subscriptions"], 1)
	require.Equal(t, http.StatusOK, s.subCall(http.MethodDelete, "/"+id, tok, nil).status)
	require.Equal(t, http.StatusForbidden, s.subCall(http.MethodGet, "/"+id, tok, nil).status)
}

func TestSubscriptionFiltersOwnershipAndWebhookURLs(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) {
		c.PVK.WebhookAllowCIDRs = []string{"127.0.0.0/8"}
		c.PVK.WebhookAllowHTTPHosts = []string{"127.0.0.1"}
	})
	tok := s.token()
	// A filter for another party: the demo definition's changes are not delivered.
	r := s.subCall(http.MethodPost, "", tok, map[string]any{"filters": map[string]any{"partKoder": []string{"ANNEN"}}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	other := r.body["subscription"].(map[string]any)["subscriptionId"].(string)
	s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(validFnr(20), true))
	time.Sleep(300 * time.Millisecond)
	got, _ := s.pull(tok, other, 10)
	require.Empty(t, got)

	tests := []struct {
		name, url, msg string
	}{
		{"https to loopback outside the allowed network", "https://[::1]:8443/hook",
			"webhook URL resolves to an address that may not be called: ::1 is loopback, private, link-local, multicast or unspecified"},
		{"metadata address", "https://169.254.169.254/latest", "webhook URL resolves to an address that may not be called: 169.254.169.254 is a cloud metadata address"},
		{"http to an unlisted host", "http://localhost:8080/hook", "webhook URL must use https (http is allowed only for listed hosts)"},
		{"not a URL", "hook", "webhook URL is not valid: an absolute http(s) URL without credentials or fragment, at most 2000 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.subCall(http.MethodPost, "", tok, map[string]any{"webhook": map[string]any{"url": tt.url}})
			require.Equal(t, http.StatusBadRequest, r.status, "%s", r.raw)
			require.Equal(t, "EPVK-100062", r.body["code"])
			require.Equal(t, tt.msg, r.body["message"])
		})
	}
	r = s.subCall(http.MethodPost, "", tok, map[string]any{"webhook": map[string]any{"url": "http://127.0.0.1:9/hook", "useXAuthorization": true}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	hook := r.body["subscription"].(map[string]any)
	require.Equal(t, true, hook["webhook"].(map[string]any)["useXAuthorization"])
	r = s.subCall(http.MethodPost, "/"+hook["subscriptionId"].(string)+":pull", tok, map[string]any{})
	require.Equal(t, "a webhook subscription cannot be pulled", r.body["message"])
	r = s.subCall(http.MethodPost, "", tok, map[string]any{"filters": map[string]any{"typePis": []string{"lov"}}})
	require.Equal(t, "EPVK-100063", r.body["code"])

	// Another subscriber sees nothing of these, and a token without the replication scope is refused.
	created, err := s.admin("client", "create", "--name", "Annen abonnent", "--orgnr", "971000007", "--scope",
		"nhn:helsenorge.eksternapi/personverninnstilling_replikering", "--scope", "nhn:helsenorge.eksternapi/personverninnstilling_read", "-o", "json")
	require.NoError(t, err)
	var c map[string]any
	require.NoError(t, json.Unmarshal([]byte(created), &c))
	otherTok := s.tokenForm(c["client_id"].(string), c["client_secret"].(string)).body["access_token"].(string)
	r = s.subCall(http.MethodGet, "/"+other, otherTok, nil)
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, "EPVK-101404", r.body["code"])
	require.Empty(t, s.subCall(http.MethodGet, "", otherTok, nil).body["subscriptions"])
	readOnly, err := s.admin("client", "create", "--name", "Leser", "--orgnr", "971000007", "--scope", "nhn:helsenorge.eksternapi/personverninnstilling_read", "-o", "json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal([]byte(readOnly), &c))
	readTok := s.tokenForm(c["client_id"].(string), c["client_secret"].(string)).body["access_token"].(string)
	r = s.subCall(http.MethodGet, "", readTok, nil)
	require.Equal(t, http.StatusForbidden, r.status)
	require.Equal(t, "the access token lacks scope nhn:helsenorge.eksternapi/personverninnstilling_replikering", r.body["message"])
}

func TestSubscriptionUpdate(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) {
		c.PVK.WebhookAllowCIDRs = []string{"127.0.0.0/8"}
		c.PVK.WebhookAllowHTTPHosts = []string{"127.0.0.1"}
	})
	tok := s.token()
	r := s.subCall(http.MethodPost, "", tok, map[string]any{"filters": map[string]any{"typePis": []string{"samtykke"}, "partKoder": []string{"DEMO"}}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	id := r.body["subscription"].(map[string]any)["subscriptionId"].(string)

	// PATCH derives the mask from the body: only the fields named change.
	tests := []struct {
		name  string
		body  map[string]any
		check func(t *testing.T, sub map[string]any)
	}{
		{"one filter", map[string]any{"filters": map[string]any{"partKoder": []string{"ANNEN"}}}, func(t *testing.T, sub map[string]any) {
			require.Equal(t, map[string]any{"typePis": []any{"samtykke"}, "partKoder": []any{"ANNEN"}, "definisjonGuids": []any{}}, sub["filters"])
			require.Nil(t, sub["webhook"], "still pull")
		}},
		{"to a webhook", map[string]any{"webhook": map[string]any{"url": "http://127.0.0.1:9/hook"}}, func(t *testing.T, sub map[string]any) {
			require.Equal(t, "http://127.0.0.1:9/hook", sub["webhook"].(map[string]any)["url"])
			require.Equal(t, false, sub["webhook"].(map[string]any)["useXAuthorization"])
		}},
		{"X-Authorization only", map[string]any{"webhook": map[string]any{"useXAuthorization": true}}, func(t *testing.T, sub map[string]any) {
			require.Equal(t, map[string]any{"url": "http://127.0.0.1:9/hook", "useXAuthorization": true}, sub["webhook"])
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := s.subCall(http.MethodPatch, "/"+id, tok, tt.body)
			require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
			tt.check(t, r.body["subscription"].(map[string]any))
			got := s.subCall(http.MethodGet, "/"+id, tok, nil)
			require.Equal(t, r.body["subscription"], got.body["subscription"], "stored as answered")
		})
	}

	bad := []struct {
		name, code, msg string
		status          int
		req             map[string]any
	}{
		{"no field", "EPVK-100060", "update_mask names no field", 400, map[string]any{"subscription": map[string]any{"subscriptionId": id}}},
		{"status through update", "EPVK-100060", `update_mask: field "status" cannot be updated`, 400,
			map[string]any{"subscription": map[string]any{"subscriptionId": id, "status": "SUBSCRIPTION_STATUS_PAUSED"}, "updateMask": "status"}},
		{"bad filter", "EPVK-100063", "filters.typePis must be samtykke, reservasjon or tilgangsbegrensning", 400,
			map[string]any{"subscription": map[string]any{"subscriptionId": id, "filters": map[string]any{"typePis": []string{"lov"}}}, "updateMask": "filters.typePis"}},
		{"metadata URL", "EPVK-100062", "webhook URL resolves to an address that may not be called: 169.254.169.254 is a cloud metadata address", 400,
			map[string]any{"subscription": map[string]any{"subscriptionId": id, "webhook": map[string]any{"url": "https://169.254.169.254/"}}, "updateMask": "webhook.url"}},
		{"no such subscription", "EPVK-101404", "you may not access this subscription", 403,
			map[string]any{"subscription": map[string]any{"subscriptionId": "6f1c2d3e-0000-4000-8000-00000000dead"}, "updateMask": "filters"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			// Over gRPC, where the mask is the caller's own.
			var req pvkv1.UpdateSubscriptionRequest
			raw, _ := json.Marshal(tt.req)
			require.NoError(t, protojson.Unmarshal(raw, &req))
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok)
			_, err := pvkv1.NewSubscriptionsServiceClient(s.conn).UpdateSubscription(ctx, &req)
			e := apierr.FromGRPC(err)
			require.Equal(t, tt.msg, e.Description)
			require.Equal(t, tt.code, e.Code)
			require.Equal(t, tt.status, e.Kind.HTTPStatus)
		})
	}

	// Back to pull: an empty webhook.
	r = s.subCall(http.MethodPatch, "/"+id, tok, map[string]any{"webhook": nil})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	require.Nil(t, r.body["subscription"].(map[string]any)["webhook"])
}

func TestSubscriptionAdminCommands(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.PVK.AckWait = time.Second })
	run := func(args ...string) map[string]any {
		t.Helper()
		out, err := s.admin(append([]string{"pvk", "subscription", args[0], "-o", "json"}, args[1:]...)...)
		require.NoError(t, err, out)
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &m), out)
		return m
	}
	sub := run("create", "--definisjon-guid", pvk.DemoDefinition.GUID)
	id := sub["subscription_id"].(string)
	require.Equal(t, s.dev.ClientID, sub["subscriber_client_id"], "acts as the dev client by default")
	require.Len(t, run("list")["subscriptions"], 1)

	tok := s.token()
	require.Equal(t, "endret", s.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(validFnr(30), true)).body["instansEndret"])
	pulled := run("pull", "--max", "10", "--wait-ms", "2000", id)
	changes := pulled["changes"].([]any)
	require.Len(t, changes, 1)
	acked := run("ack", id, changes[0].(map[string]any)["ack_id"].(string))
	require.Equal(t, float64(1), acked["acked"])

	updated := run("update", "--type-pi", "samtykke", id)
	require.Equal(t, []any{"samtykke"}, updated["filters"].(map[string]any)["type_pis"])
	require.Equal(t, []any{pvk.DemoDefinition.GUID}, updated["filters"].(map[string]any)["definisjon_guids"], "other filters stay")
	cleared := run("update", "--clear-filters", id)
	require.Empty(t, cleared["filters"])
	require.Equal(t, "SUBSCRIPTION_STATUS_PAUSED", run("pause", id)["status"])
	require.Equal(t, "SUBSCRIPTION_STATUS_ACTIVE", run("resume", id)["status"])
	run("replay", "--from-endringsnummer", "1", id)
	again := run("pull", "--wait-ms", "2000", id)
	require.Len(t, again["changes"], 1, "the replay delivers the change again")
	run("delete", id)
	require.Empty(t, run("list")["subscriptions"])

	_, err := s.admin("pvk", "subscription", "replay", "--from-time", "yesterday", id)
	require.EqualError(t, err, `--from-time: want RFC 3339, got "yesterday"`)
	_, err = s.admin("pvk", "subscription", "get", "6f1c2d3e-0000-4000-8000-00000000dead")
	require.EqualError(t, err, "permission_denied: you may not access this subscription")
}
