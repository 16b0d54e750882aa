package main

import (
	"context"
	"flag"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/services/pvk"
)

// Cutting off a subscriber stops the data (issue 14): a subscriber whose client configuration is blocked,
// deleted, or has lost its replication grant receives nothing new, by webhook or by pull, and the STS
// issues no SystemToken for it; its changes are held, and arrive once it is reinstated.

// deliveryCase is a subscriber with a client configuration of its own, holding the replication grant, and a
// webhook and a pull subscription; the dev client writes the changes.
type deliveryCase struct {
	t              *testing.T
	s              *testServer
	writer         string // the dev client's access token
	id, secret     string // the subscriber's client credentials
	rcv            *receiver
	webhook, pull  string // subscription ids
	citizen        int    // the next citizen to change
	pulled, before int    // changes pulled so far; receiver calls before the cut
}

// newDeliveryCase sets the subscriber up and shows that both subscriptions deliver before the cut.
func newDeliveryCase(t *testing.T) *deliveryCase {
	s := newWebhookServer(t, func(c *serveConfig) { c.PVK.AckWait = time.Second })
	c := must(t)(s.adminAs(nil, "client", "create", "--name", "Abonnent AS", "--orgnr", "914994780", "--scope", scope.PVKReplication))
	d := &deliveryCase{t: t, s: s, writer: s.token(), id: c["client_id"].(string), secret: c["client_secret"].(string), rcv: newReceiver(t),
		citizen: 600}
	tok := d.token()
	r := s.subCall(http.MethodPost, "", tok, map[string]any{"webhook": map[string]any{"url": d.rcv.srv.URL + "/pvk"}})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	d.rcv.expect(s.base, s.cfg.STS.Issuer, d.id, r.body["webhookSecret"].(string), false)
	d.webhook = r.body["subscription"].(map[string]any)["subscriptionId"].(string)
	r = s.subCall(http.MethodPost, "", tok, map[string]any{})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	d.pull = r.body["subscription"].(map[string]any)["subscriptionId"].(string)

	d.write(1)
	d.rcv.waitFor(1, 10*time.Second)
	d.pullAll(tok, 1)
	_, err := d.systemToken()
	require.NoError(t, err, "the STS issues SystemTokens for the subscriber")
	d.before = d.calls()
	return d
}

// token is an access token of the subscriber.
func (d *deliveryCase) token() string {
	d.t.Helper()
	r := d.s.tokenForm(d.id, d.secret)
	require.Equal(d.t, http.StatusOK, r.status, "%s", r.raw)
	return r.body["access_token"].(string)
}

// write changes n more citizens' settings.
func (d *deliveryCase) write(n int) {
	d.t.Helper()
	d.s.writeChanges(d.writer, d.citizen, n, 1)
	d.citizen += n
}

// calls counts every request the receiver got, whether or not it passed its checks.
func (d *deliveryCase) calls() int {
	d.rcv.mu.Lock()
	defer d.rcv.mu.Unlock()
	return len(d.rcv.calls) + len(d.rcv.rejected)
}

// pullAll pulls and acknowledges until n more changes came.
func (d *deliveryCase) pullAll(tok string, n int) {
	d.t.Helper()
	want := d.pulled + n
	require.EventuallyWithT(d.t, func(c *assertCollect) {
		r := d.s.subCall(http.MethodPost, "/"+d.pull+":pull", tok, map[string]any{"max": 100, "waitMs": 200})
		require.Equal(c, http.StatusOK, r.status, "%s", r.raw)
		var acks []string
		for _, ch := range r.body["changes"].([]any) {
			acks = append(acks, ch.(map[string]any)["ackId"].(string))
		}
		if len(acks) > 0 {
			a := d.s.subCall(http.MethodPost, "/"+d.pull+":ack", tok, map[string]any{"ackIds": acks})
			require.Equal(c, http.StatusOK, a.status, "%s", a.raw)
			d.pulled += len(acks)
		}
		require.Equal(c, want, d.pulled)
	}, 10*time.Second, 50*time.Millisecond)
}

// systemToken asks the STS, as the dispatcher does, for a SystemToken to the subscriber.
func (d *deliveryCase) systemToken() (string, error) {
	resp, err := stsv1.NewTokenServiceClient(d.s.conn).IssueSystemToken(context.Background(), &stsv1.IssueSystemTokenRequest{
		Audience: d.id, Scopes: []string{scope.PVKReplication}, ClientId: "hnsec-pvk", ClientName: "Personvernkomponenten"})
	return resp.GetToken(), err
}

// cut does what cuts the subscriber off and waits, at most a few seconds, until the STS refuses it a
// SystemToken with the reason.
func (d *deliveryCase) cut(reason string, args ...string) {
	d.t.Helper()
	must(d.t)(d.s.adminAs(nil, args...))
	require.EventuallyWithT(d.t, func(c *assertCollect) {
		tok, err := d.systemToken()
		require.Empty(c, tok)
		require.Equal(c, codes.FailedPrecondition, status.Code(err), "%v", err)
		require.Equal(c, "no SystemToken with scope "+scope.PVKReplication+" for this audience: "+reason, status.Convert(err).Message())
	}, 3*time.Second, 20*time.Millisecond, "cut off within seconds")
}

// requireNothingSent writes n changes while the subscriber is cut off and checks that none reaches it:
// no webhook request at all, and no pull with the token it had (which is refused as wantPull).
func (d *deliveryCase) requireNothingSent(n, wantPull int, tok string) {
	d.t.Helper()
	d.write(n)
	time.Sleep(1500 * time.Millisecond) // the dispatcher had every chance
	require.Equal(d.t, d.before, d.calls(), "no webhook request while the subscriber is cut off")
	r := d.s.subCall(http.MethodPost, "/"+d.pull+":pull", tok, map[string]any{"max": 100})
	require.Equal(d.t, wantPull, r.status, "%s", r.raw)
	require.NotContains(d.t, string(r.raw), "innbyggerFnr")
}

// requireHeld checks that the webhook subscription says, to the dispatcher and in its status reason, why
// it does not deliver.
func (d *deliveryCase) requireHeld(reason string) {
	d.t.Helper()
	want := pvk.HeldPrefix + reason + "; changes are kept and delivered once the subscriber is reinstated"
	require.EventuallyWithT(d.t, func(c *assertCollect) {
		resp, err := pvkv1.NewSubscriptionsServiceClient(d.s.conn).ListWebhookTargets(context.Background(), &pvkv1.ListWebhookTargetsRequest{})
		require.NoError(c, err)
		found := false
		for _, wt := range resp.GetTargets() {
			if sub := wt.GetSubscription(); sub.GetSubscriptionId() == d.webhook {
				found = true
				require.Equal(c, pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE, sub.GetStatus(), "held, not disabled: it resumes by itself")
				require.Equal(c, want, sub.GetStatusReason())
			}
		}
		require.True(c, found)
	}, 3*time.Second, 20*time.Millisecond)
}

// requireReleased checks, after the subscriber was reinstated, that the held changes arrive (webhook, in
// citizen order, and pull), that both subscriptions are active with no reason left, and that their audit
// trails say when and why they were held and released.
func (d *deliveryCase) requireReleased(held int, reason string) {
	d.t.Helper()
	got := d.rcv.waitFor(1+held, 10*time.Second)
	requireCitizenOrder(d.t, got)
	d.rcv.mu.Lock()
	require.Empty(d.t, d.rcv.rejected, "every call after the release carries a valid SystemToken and signature")
	d.rcv.mu.Unlock()
	tok := d.token()
	d.pullAll(tok, held)
	for _, id := range []string{d.webhook, d.pull} {
		require.EventuallyWithT(d.t, func(c *assertCollect) {
			r := d.s.subCall(http.MethodGet, "/"+id, tok, nil)
			require.Equal(c, http.StatusOK, r.status, "%s", r.raw)
			sub := r.body["subscription"].(map[string]any)
			require.Equal(c, "SUBSCRIPTION_STATUS_ACTIVE", sub["status"])
			require.Empty(c, sub["statusReason"])
		}, 3*time.Second, 20*time.Millisecond)
		r := d.s.subCall(http.MethodGet, "/"+id+"/events", tok, nil)
		require.Equal(d.t, http.StatusOK, r.status, "%s", r.raw)
		var trail []string
		for _, e := range r.body["events"].([]any) {
			ev := e.(map[string]any)
			if ev["actor"] == pvk.SubscriberCheckActor {
				reason, _ := ev["reason"].(string)
				trail = append(trail, ev["action"].(string)+": "+reason)
			}
		}
		require.Equal(d.t, []string{"held: " + reason, "released: the subscriber may receive again"}, trail, "subscription %s", id)
	}
	logs := d.s.logs.String()
	require.NotContains(d.t, logs, d.secret, "no secret in the logs")
	for c := 600; c < d.citizen; c++ {
		require.NotContains(d.t, logs, validFnr(c), "no fnr in the logs")
	}
}

// A blocked subscriber gets nothing new; unblocked, it gets every change held meanwhile, in order.
//
// Before issue 14 the dispatcher went on calling the webhook with the SystemToken it had cached (and the STS
// issued new ones), so requireNothingSent saw webhook requests and cut never saw a refusal.
func TestSecurityBlockedSubscriberReceivesNothingNew(t *testing.T) {
	d := newDeliveryCase(t)
	tok := d.token()
	const reason = "the subscriber's client configuration is blocked"
	d.cut(reason, "client", "block", d.id)
	d.requireNothingSent(3, http.StatusUnauthorized, tok)
	d.requireHeld(reason)

	must(t)(d.s.adminAs(nil, "client", "unblock", d.id))
	d.requireReleased(3, reason)
}

// A deleted subscriber gets nothing new, ever; its subscriptions say why.
//
// Before issue 14 the dispatcher went on calling the webhook with its cached SystemToken and the STS issued
// SystemTokens to any audience, deleted clients included.
func TestSecurityDeletedSubscriberReceivesNothingNew(t *testing.T) {
	d := newDeliveryCase(t)
	tok := d.token()
	const reason = "the subscriber's client configuration does not exist (deleted)"
	d.cut(reason, "client", "delete", d.id)
	d.requireNothingSent(3, http.StatusUnauthorized, tok)
	d.requireHeld(reason)
}

// A subscriber whose replication grant was revoked gets nothing new; granted again, it gets every change
// held meanwhile, in order.
//
// Before issue 14 the dispatcher never looked at grants: the webhook went on receiving every change.
func TestSecurityUngrantedSubscriberReceivesNothingNew(t *testing.T) {
	d := newDeliveryCase(t)
	tok := d.token()
	reason := "the subscriber's client configuration holds no approved grant of scope " + scope.PVKReplication + " (the grant is revoked)"
	d.cut(reason, "grant", "revoke", "--client", d.id, "--scope", scope.PVKReplication)
	d.requireNothingSent(3, http.StatusUnauthorized, tok)
	d.requireHeld(reason)

	// The operator grants the scope again (an operator's request is approved at once).
	g := must(t)(d.s.adminAs(nil, "grant", "request", "--client", d.id, "--scope", scope.PVKReplication))
	require.Equal(t, "GRANT_STATUS_APPROVED", field(g, "grant", "status"))
	d.requireReleased(3, reason)
}

// A subscriber may have --max-subscriptions-per-subscriber subscriptions, whatever their status; one more
// is refused with EPVK-100064 until one is deleted.
//
// Before issue 14 there was no limit (and no flag: this test does not compile there).
func TestSecuritySubscriptionLimitPerSubscriber(t *testing.T) {
	s := newTestServer(t, func(c *serveConfig) { c.PVK.MaxSubscriptionsPerSubscriber = 2 })
	tok := s.token()
	var ids []string
	for range 2 {
		r := s.subCall(http.MethodPost, "", tok, map[string]any{})
		require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
		ids = append(ids, r.body["subscription"].(map[string]any)["subscriptionId"].(string))
	}
	require.Equal(t, http.StatusOK, s.subCall(http.MethodPost, "/"+ids[0]+":pause", tok, map[string]any{}).status)
	r := s.subCall(http.MethodPost, "", tok, map[string]any{})
	require.Equal(t, http.StatusConflict, r.status, "%s", r.raw)
	require.Equal(t, "EPVK-100064", r.body["code"])
	require.Equal(t, "a subscriber may have at most 2 subscriptions; delete one before creating another", r.body["message"])

	require.Equal(t, http.StatusOK, s.subCall(http.MethodDelete, "/"+ids[0], tok, nil).status)
	require.Equal(t, http.StatusOK, s.subCall(http.MethodPost, "", tok, map[string]any{}).status, "room again after a delete")

	// The flag is documented and checked.
	var cfg serveConfig
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	cfg.registerFlags(fs)
	f := fs.Lookup("max-subscriptions-per-subscriber")
	require.NotNil(t, f)
	require.Equal(t, "20", f.DefValue)
	require.True(t, strings.Contains(f.Usage, "subscriptions"))
	cfg.PVK.MaxSubscriptionsPerSubscriber = 0
	require.EqualError(t, cfg.PVK.Validate(), "--max-subscriptions-per-subscriber must be at least 1")
}
