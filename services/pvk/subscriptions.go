package pvk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/types/known/timestamppb"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/fieldmask"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/pkg/ssrf"
	"github.com/hnsec/hnsec/pkg/store"
	"github.com/hnsec/hnsec/pkg/subscriber"
)

// Subscription codes.
const (
	codeSubscription       = "EPVK-100060"
	codeSubscriptionState  = "EPVK-100061"
	codeWebhookURL         = "EPVK-100062"
	codeSubscriptionFilter = "EPVK-100063"
	codeSubscriptionLimit  = "EPVK-100064"
	codeSubscriptionHeld   = "EPVK-100065"
	codeNoSubscription     = "EPVK-101404"
)

// Subscriptions implements SubscriptionsService on the PVK server's store and stream.
//
// A subscriber that is cut off (its client configuration blocked or deleted, or without an approved grant
// of the replication scope) receives nothing: PullSubscription refuses it, the dispatcher holds its
// webhooks, and its changes wait in the stream (for --pvk-stream-max-age) and among the dispatcher's
// parked changes (for --dead-letter-retention) until it is reinstated. Each active subscription of such a
// subscriber says so in its status_reason (HeldPrefix and the reason) and its audit trail ("held", then
// "released").
type Subscriptions struct {
	pvkv1.UnimplementedSubscriptionsServiceServer
	pvk         *Server
	policy      ssrf.Policy
	subscribers *subscriber.Checker
	// ackIDs seals the ack ids of pulled changes, so that any replica can acknowledge them (pull_ack.go).
	ackIDs ackIDs
	// mu guards changedClients.
	mu sync.Mutex
	// creating serialises creations, so that the per-subscriber limit holds (in this process).
	creating sync.Mutex
	// changedClients are the clients the registry announced a change of since the last reconciliation.
	changedClients map[string]bool
	reconcile      chan struct{}
}

var _ pvkv1.SubscriptionsServiceServer = (*Subscriptions)(nil)

// NewSubscriptions returns the subscriptions service of a PVK server; subscribers checks, at each pull and
// whenever the registry announces a change, that a subscriber may still receive.
func NewSubscriptions(s *Server, subscribers *subscriber.Checker) (*Subscriptions, error) {
	nets, err := ssrf.ParseCIDRs(s.cfg.WebhookAllowCIDRs)
	if err != nil {
		return nil, err
	}
	if subscribers == nil {
		return nil, errors.New("pvk subscriptions: a subscriber checker is required")
	}
	acks, err := newAckIDs(s.ackKey)
	if err != nil {
		return nil, fmt.Errorf("pvk ack ids: %w", err)
	}
	return &Subscriptions{pvk: s, policy: ssrf.Policy{AllowNetworks: nets, AllowHTTPHosts: s.cfg.WebhookAllowHTTPHosts},
		subscribers: subscribers, ackIDs: acks, changedClients: map[string]bool{}, reconcile: make(chan struct{}, 1)}, nil
}

// consumerName is the durable JetStream consumer of a subscription.
func consumerName(id string) string { return "sub-" + id }

// subscriber authenticates the caller: a token with the replication scope; its client is the subscriber.
func (s *Subscriptions) subscriber(ctx context.Context) (string, error) {
	resp, err := s.pvk.introspect(ctx, scope.PVKReplication)
	if err != nil {
		return "", err
	}
	return resp.GetClientId(), nil
}

// own returns the caller's subscription; another's, or none, is denied alike.
func (s *Subscriptions) own(ctx context.Context, id string) (Subscription, error) {
	caller, err := s.subscriber(ctx)
	if err != nil {
		return Subscription{}, err
	}
	denied := apierr.WithCode(apierr.PermissionDenied, codeNoSubscription, "you may not access this subscription")
	if !guid.Valid(id) {
		return Subscription{}, invalid(codeSubscription, "subscription_id must be a GUID")
	}
	sub, err := s.pvk.store.GetSubscription(ctx, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && sub.Subscriber != caller) {
		return Subscription{}, denied
	}
	return sub, err
}

// CreateSubscription implements SubscriptionsService.
func (s *Subscriptions) CreateSubscription(ctx context.Context, req *pvkv1.CreateSubscriptionRequest) (*pvkv1.CreateSubscriptionResponse, error) {
	caller, err := s.subscriber(ctx)
	if err != nil {
		return nil, err
	}
	filters, err := checkFilters(req.GetFilters())
	if err != nil {
		return nil, err
	}
	if err := s.checkWebhook(ctx, req.GetWebhook()); err != nil {
		return nil, err
	}
	s.creating.Lock()
	defer s.creating.Unlock()
	if err := s.checkLimit(ctx, caller); err != nil {
		return nil, err
	}
	sub := Subscription{ID: guid.New(), Subscriber: caller, WebhookURL: req.GetWebhook().GetUrl(), XAuth: req.GetWebhook().GetUseXAuthorization(),
		Status: int32(pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE), CreateTime: time.Now().UTC().Truncate(time.Millisecond),
		Filters: filters}
	if sub.WebhookURL != "" {
		sub.Secret = newWebhookSecret()
	}
	if err := s.consumer(ctx, sub.ID, jetstream.ConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy}); err != nil {
		return nil, err
	}
	if err := s.pvk.store.CreateSubscription(ctx, sub, auditEvent(caller, "created", "")); err != nil {
		return nil, err
	}
	s.changed(sub.ID)
	s.pvk.log.Info("subscription created", "subscription_id", sub.ID, "subscriber", caller)
	return &pvkv1.CreateSubscriptionResponse{Subscription: subscriptionProto(sub), WebhookSecret: sub.Secret}, nil
}

// checkLimit refuses a subscriber who has --max-subscriptions-per-subscriber subscriptions already.
func (s *Subscriptions) checkLimit(ctx context.Context, caller string) error {
	subs, err := s.pvk.store.ListSubscriptions(ctx, caller)
	if err != nil {
		return err
	}
	if limit := s.pvk.cfg.MaxSubscriptionsPerSubscriber; len(subs) >= limit {
		return apierr.WithCode(apierr.FailedPrecondition, codeSubscriptionLimit,
			"a subscriber may have at most %d subscriptions; delete one before creating another", limit)
	}
	return nil
}

// WebhookSecretPrefix starts every webhook signing secret (Standard Webhooks).
const WebhookSecretPrefix = "whsec_"

// PreviousSecretLifetime is how long a rotated-out webhook secret goes on signing beside the new one.
const PreviousSecretLifetime = 24 * time.Hour

// newWebhookSecret returns a Standard Webhooks signing secret: whsec_ and 32 random bytes in base64.
func newWebhookSecret() string {
	return WebhookSecretPrefix + base64.StdEncoding.EncodeToString(secrets.NewKey())
}

// changed tells the dispatcher that a subscription changed.
func (s *Subscriptions) changed(id string) {
	if err := s.pvk.bus.Conn.Publish(s.pvk.bus.Subject(natsbus.SubjectSubscriptionChanged), []byte(id)); err != nil {
		s.pvk.log.Error("publish subscription change", "subscription_id", id, "err", err)
	}
}

// deleted tells the dispatcher that a subscription was deleted: its change event, with the header
// natsbus.HeaderSubscriptionDeleted, so that the dispatcher deletes what it keeps of the subscription.
func (s *Subscriptions) deleted(id string) {
	msg := &nats.Msg{Subject: s.pvk.bus.Subject(natsbus.SubjectSubscriptionChanged), Data: []byte(id), Header: nats.Header{}}
	msg.Header.Set(natsbus.HeaderSubscriptionDeleted, "true")
	if err := s.pvk.bus.Conn.PublishMsg(msg); err != nil {
		s.pvk.log.Error("publish subscription change", "subscription_id", id, "err", err)
	}
}

// checkFilters validates filters and returns them in storage form.
func checkFilters(f *pvkv1.Filters) (Filters, error) {
	for _, g := range f.GetDefinisjonGuids() {
		if !guid.Valid(g) {
			return Filters{}, invalid(codeSubscriptionFilter, "filters.definisjonGuids must be GUIDs")
		}
	}
	for _, t := range f.GetTypePis() {
		if !slices.Contains(TypesPi, t) {
			return Filters{}, invalid(codeSubscriptionFilter, "filters.typePis must be samtykke, reservasjon or tilgangsbegrensning")
		}
	}
	if len(f.GetDefinisjonGuids())+len(f.GetTypePis())+len(f.GetPartKoder()) > 100 {
		return Filters{}, invalid(codeSubscriptionFilter, "filters may name at most 100 values")
	}
	return Filters{DefinitionGUIDs: f.GetDefinisjonGuids(), TypesPi: f.GetTypePis(), PartKoder: f.GetPartKoder()}, nil
}

// checkWebhook checks that the deployment may call a webhook's URL; no webhook means pull delivery.
func (s *Subscriptions) checkWebhook(ctx context.Context, w *pvkv1.Webhook) error {
	if w.GetUrl() == "" {
		return nil
	}
	if err := s.policy.CheckURL(ctx, w.GetUrl()); err != nil {
		return invalid(codeWebhookURL, "%v", err)
	}
	return nil
}

// UpdateSubscription implements SubscriptionsService.
func (s *Subscriptions) UpdateSubscription(ctx context.Context, req *pvkv1.UpdateSubscriptionRequest) (*pvkv1.UpdateSubscriptionResponse, error) {
	in := req.GetSubscription()
	owned, err := s.own(ctx, in.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	paths, err := fieldmask.Paths(req.GetUpdateMask(), "filters", "filters.definisjon_guids", "filters.type_pis", "filters.part_koder",
		"webhook", "webhook.url", "webhook.use_x_authorization")
	if err != nil {
		return nil, invalid(codeSubscription, "%v", err)
	}
	filters, err := checkFilters(in.GetFilters())
	if err != nil {
		return nil, err
	}
	if slices.ContainsFunc(paths, func(p string) bool { return p == "webhook" || p == "webhook.url" }) {
		if err := s.checkWebhook(ctx, in.GetWebhook()); err != nil {
			return nil, err
		}
	}
	var secret string
	sub, err := s.pvk.store.UpdateSubscription(ctx, in.GetSubscriptionId(), auditEvent(owned.Subscriber, "updated", ""), func(sub *Subscription) error {
		defer func() {
			if sub.WebhookURL != "" && sub.Secret == "" {
				sub.Secret = newWebhookSecret()
				secret = sub.Secret
			}
		}()
		for _, p := range paths {
			switch p {
			case "filters":
				sub.Filters = filters
			case "filters.definisjon_guids":
				sub.Filters.DefinitionGUIDs = filters.DefinitionGUIDs
			case "filters.type_pis":
				sub.Filters.TypesPi = filters.TypesPi
			case "filters.part_koder":
				sub.Filters.PartKoder = filters.PartKoder
			case "webhook":
				sub.WebhookURL, sub.XAuth = in.GetWebhook().GetUrl(), in.GetWebhook().GetUseXAuthorization()
			case "webhook.url":
				sub.WebhookURL = in.GetWebhook().GetUrl()
			case "webhook.use_x_authorization":
				sub.XAuth = in.GetWebhook().GetUseXAuthorization()
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.changed(sub.ID)
	return &pvkv1.UpdateSubscriptionResponse{Subscription: subscriptionProto(sub), WebhookSecret: secret}, nil
}

// consumer (re)creates a subscription's durable consumer starting as cfg says.
func (s *Subscriptions) consumer(ctx context.Context, id string, cfg jetstream.ConsumerConfig) error {
	cfg.Durable = consumerName(id)
	cfg.AckPolicy = jetstream.AckExplicitPolicy
	cfg.AckWait = s.pvk.cfg.AckWait
	cfg.MaxAckPending = 1000
	_ = s.pvk.relay.js.DeleteConsumer(ctx, s.pvk.relay.names.stream, cfg.Durable)
	_, err := s.pvk.relay.js.CreateOrUpdateConsumer(ctx, s.pvk.relay.names.stream, cfg)
	return err
}

// GetSubscription implements SubscriptionsService.
func (s *Subscriptions) GetSubscription(ctx context.Context, req *pvkv1.GetSubscriptionRequest) (*pvkv1.GetSubscriptionResponse, error) {
	sub, err := s.own(ctx, req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	return &pvkv1.GetSubscriptionResponse{Subscription: subscriptionProto(sub)}, nil
}

// ListSubscriptions implements SubscriptionsService.
func (s *Subscriptions) ListSubscriptions(ctx context.Context, _ *pvkv1.ListSubscriptionsRequest) (*pvkv1.ListSubscriptionsResponse, error) {
	caller, err := s.subscriber(ctx)
	if err != nil {
		return nil, err
	}
	subs, err := s.pvk.store.ListSubscriptions(ctx, caller)
	if err != nil {
		return nil, err
	}
	resp := &pvkv1.ListSubscriptionsResponse{Subscriptions: []*pvkv1.Subscription{}}
	for _, sub := range subs {
		resp.Subscriptions = append(resp.Subscriptions, subscriptionProto(sub))
	}
	return resp, nil
}

// PauseSubscription implements SubscriptionsService.
func (s *Subscriptions) PauseSubscription(ctx context.Context, req *pvkv1.PauseSubscriptionRequest) (*pvkv1.PauseSubscriptionResponse, error) {
	sub, err := s.setStatus(ctx, req.GetSubscriptionId(), pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE, pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED)
	if err != nil {
		return nil, err
	}
	return &pvkv1.PauseSubscriptionResponse{Subscription: subscriptionProto(sub)}, nil
}

// ResumeSubscription implements SubscriptionsService: paused and disabled subscriptions become active.
func (s *Subscriptions) ResumeSubscription(ctx context.Context, req *pvkv1.ResumeSubscriptionRequest) (*pvkv1.ResumeSubscriptionResponse, error) {
	sub, err := s.setStatus(ctx, req.GetSubscriptionId(), pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED, pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE,
		pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED)
	if err != nil {
		return nil, err
	}
	return &pvkv1.ResumeSubscriptionResponse{Subscription: subscriptionProto(sub)}, nil
}

// setStatus moves the caller's subscription from one of from to to.
func (s *Subscriptions) setStatus(ctx context.Context, id string, from, to pvkv1.SubscriptionStatus, alsoFrom ...pvkv1.SubscriptionStatus) (Subscription, error) {
	owned, err := s.own(ctx, id)
	if err != nil {
		return Subscription{}, err
	}
	action := "resumed"
	if to == pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_PAUSED {
		action = "paused"
	}
	allowed := append([]pvkv1.SubscriptionStatus{from}, alsoFrom...)
	sub, err := s.pvk.store.UpdateSubscription(ctx, id, auditEvent(owned.Subscriber, action, ""), func(sub *Subscription) error {
		if !slices.Contains(allowed, pvkv1.SubscriptionStatus(sub.Status)) {
			return apierr.WithCode(apierr.FailedPrecondition, codeSubscriptionState, "the subscription is %s",
				pvkv1.SubscriptionStatus(sub.Status).String())
		}
		sub.Status, sub.StatusReason = int32(to), ""
		return nil
	})
	if err == nil {
		s.changed(id)
	}
	return sub, err
}

// DeleteSubscription implements SubscriptionsService.
func (s *Subscriptions) DeleteSubscription(ctx context.Context, req *pvkv1.DeleteSubscriptionRequest) (*pvkv1.DeleteSubscriptionResponse, error) {
	sub, err := s.own(ctx, req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	if err := s.pvk.store.DeleteSubscription(ctx, sub.ID, auditEvent(sub.Subscriber, "deleted", "")); err != nil {
		return nil, err
	}
	// Should this fail (NATS unreachable, the caller gone), the consumer sweep deletes it later.
	if err := s.deleteConsumer(context.WithoutCancel(ctx), sub.ID); err != nil {
		s.pvk.log.Warn("delete subscription consumer; the consumer sweep retries", "subscription_id", sub.ID, "err", err)
	}
	s.deleted(sub.ID)
	return &pvkv1.DeleteSubscriptionResponse{}, nil
}

// ReplaySubscription implements SubscriptionsService.
func (s *Subscriptions) ReplaySubscription(ctx context.Context, req *pvkv1.ReplaySubscriptionRequest) (*pvkv1.ReplaySubscriptionResponse, error) {
	sub, err := s.own(ctx, req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	cfg := jetstream.ConsumerConfig{}
	from := req.GetFromEndringsnummer()
	if from == 0 {
		from = req.GetFromSekvensnummer() // the deprecated name of from_endringsnummer
	}
	switch {
	case (from > 0) == (req.GetFromTime() != nil):
		return nil, invalid(codeSubscription, "name exactly one of fromEndringsnummer and fromTime")
	case req.GetFromTime() != nil:
		t := req.GetFromTime().AsTime()
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	default:
		seq, err := s.streamSeqOf(ctx, from)
		if err != nil {
			return nil, err
		}
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, seq
	}
	if err := s.consumer(ctx, sub.ID, cfg); err != nil {
		return nil, err
	}
	s.changed(sub.ID) // the dispatcher attaches to the new consumer
	return &pvkv1.ReplaySubscriptionResponse{}, nil
}

// event is the part of a change event subscriptions look at.
type event struct {
	Endringsnummer int64 `json:"endringsnummer"`
	Data           struct {
		DefinitionGUID string `json:"definisjonGuid"`
		TypePi         string `json:"typePi"`
		PartKode       string `json:"partKode"`
		Sekvensnummer  int64  `json:"sekvensnummer"`
	} `json:"data"`
}

func eventOf(b []byte) event {
	var e event
	_ = json.Unmarshal(b, &e)
	return e
}

// position is the event's endringsnummer; events written before it existed carry their stream position
// as data.sekvensnummer, which was deployment-wide then.
func (e event) position() int64 {
	if e.Endringsnummer > 0 {
		return e.Endringsnummer
	}
	return e.Data.Sekvensnummer
}

// Matches reports whether a change event passes the filters.
func (f Filters) Matches(payload []byte) bool {
	d := eventOf(payload).Data
	in := func(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
	return in(f.DefinitionGUIDs, d.DefinitionGUID) && in(f.TypesPi, d.TypePi) && in(f.PartKoder, d.PartKode)
}

// PullSubscription implements SubscriptionsService.
func (s *Subscriptions) PullSubscription(ctx context.Context, req *pvkv1.PullSubscriptionRequest) (*pvkv1.PullSubscriptionResponse, error) {
	sub, err := s.own(ctx, req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	switch {
	case sub.WebhookURL != "":
		return nil, apierr.WithCode(apierr.FailedPrecondition, codeSubscriptionState, "a webhook subscription cannot be pulled")
	case sub.Status != int32(pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE):
		return nil, apierr.WithCode(apierr.FailedPrecondition, codeSubscriptionState, "the subscription is %s",
			pvkv1.SubscriptionStatus(sub.Status).String())
	case req.GetMax() < 0 || req.GetMax() > 500 || req.GetWaitMs() < 0 || req.GetWaitMs() > 30000:
		return nil, invalid(codeSubscription, "max must be 1 to 500 and waitMs 0 to 30000")
	}
	if err := s.mayReceive(ctx, sub.Subscriber); err != nil {
		return nil, err
	}
	max := int(req.GetMax())
	if max == 0 {
		max = 100
	}
	cons, err := s.pvk.relay.js.Consumer(ctx, s.pvk.relay.names.stream, consumerName(sub.ID))
	if err != nil {
		return nil, err
	}
	msgs, err := fetch(cons, max, time.Duration(req.GetWaitMs())*time.Millisecond)
	if err != nil {
		return nil, err
	}
	resp := &pvkv1.PullSubscriptionResponse{Changes: []*pvkv1.PulledChange{}}
	expires := time.Now().Add(s.pvk.cfg.AckWait)
	for _, m := range msgs {
		if !sub.Filters.Matches(m.Data()) {
			_ = m.Ack() // not for this subscriber
			continue
		}
		ackID := s.ackIDs.seal(sub.ID, m.Reply(), expires)
		resp.Changes = append(resp.Changes, &pvkv1.PulledChange{AckId: ackID, Event: string(m.Data())})
	}
	return resp, nil
}

// fetch returns up to max messages: those waiting, or else the first to arrive within wait and those
// waiting behind it. It never holds a message it has until the wait ends, so a wait longer than the ack
// wait cannot hand out a message twice.
func fetch(cons jetstream.Consumer, max int, wait time.Duration) ([]jetstream.Msg, error) {
	msgs, err := collect(cons.FetchNoWait(max))
	if err != nil || len(msgs) > 0 || wait == 0 {
		return msgs, err
	}
	first, err := collect(cons.Fetch(1, jetstream.FetchMaxWait(wait)))
	if err != nil || len(first) == 0 || max == 1 {
		return first, err
	}
	rest, err := collect(cons.FetchNoWait(max - 1))
	return append(first, rest...), err
}

// collect reads a fetched batch; no messages is not an error.
func collect(batch jetstream.MessageBatch, err error) ([]jetstream.Msg, error) {
	if err != nil {
		return nil, err
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, m)
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return msgs, err
	}
	return msgs, nil
}

// AckSubscription implements SubscriptionsService.
func (s *Subscriptions) AckSubscription(ctx context.Context, req *pvkv1.AckSubscriptionRequest) (*pvkv1.AckSubscriptionResponse, error) {
	sub, err := s.own(ctx, req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	if len(req.GetAckIds()) > 500 {
		return nil, invalid(codeSubscription, "at most 500 ack ids at a time")
	}
	resp := &pvkv1.AckSubscriptionResponse{}
	now := time.Now()
	for _, id := range req.GetAckIds() {
		// Any replica opens an ack id any replica sealed, and acknowledges through JetStream.
		reply, err := s.ackIDs.open(sub.ID, id, now)
		if err == nil {
			err = s.ack(ctx, reply)
		}
		if err != nil {
			resp.Unknown = append(resp.Unknown, id)
			continue
		}
		resp.Acked++
	}
	return resp, nil
}

// RotateWebhookSecret implements SubscriptionsService.
func (s *Subscriptions) RotateWebhookSecret(ctx context.Context, req *pvkv1.RotateWebhookSecretRequest) (*pvkv1.RotateWebhookSecretResponse, error) {
	owned, err := s.own(ctx, req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	secret, expires := newWebhookSecret(), time.Now().Add(PreviousSecretLifetime).UTC().Truncate(time.Millisecond)
	_, err = s.pvk.store.UpdateSubscription(ctx, req.GetSubscriptionId(), auditEvent(owned.Subscriber, "secret_rotated", ""), func(sub *Subscription) error {
		if sub.WebhookURL == "" {
			return apierr.WithCode(apierr.FailedPrecondition, codeSubscriptionState, "a pull subscription has no webhook secret")
		}
		sub.Secret, sub.PreviousSecret, sub.PreviousExpire = secret, sub.Secret, expires
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.changed(req.GetSubscriptionId())
	return &pvkv1.RotateWebhookSecretResponse{WebhookSecret: secret, PreviousExpireTime: timestamppb.New(expires)}, nil
}

// ListWebhookTargets implements SubscriptionsService for the dispatcher (internal callers only).
func (s *Subscriptions) ListWebhookTargets(ctx context.Context, _ *pvkv1.ListWebhookTargetsRequest) (*pvkv1.ListWebhookTargetsResponse, error) {
	subs, err := s.pvk.store.ListSubscriptions(ctx, "")
	if err != nil {
		return nil, err
	}
	resp := &pvkv1.ListWebhookTargetsResponse{Targets: []*pvkv1.WebhookTarget{}}
	now := time.Now()
	for _, sub := range subs {
		if sub.WebhookURL == "" {
			continue
		}
		t := &pvkv1.WebhookTarget{Subscription: subscriptionProto(sub), Secrets: []string{sub.Secret}, Stream: s.pvk.relay.names.stream,
			Consumer: consumerName(sub.ID)}
		if sub.PreviousSecret != "" && now.Before(sub.PreviousExpire) {
			t.Secrets = append(t.Secrets, sub.PreviousSecret)
		}
		resp.Targets = append(resp.Targets, t)
	}
	return resp, nil
}

// DisableSubscription implements SubscriptionsService for the dispatcher (internal callers only).
func (s *Subscriptions) DisableSubscription(ctx context.Context, req *pvkv1.DisableSubscriptionRequest) (*pvkv1.DisableSubscriptionResponse, error) {
	if !guid.Valid(req.GetSubscriptionId()) {
		return nil, invalid(codeSubscription, "subscription_id must be a GUID")
	}
	sub, err := s.pvk.store.UpdateSubscription(ctx, req.GetSubscriptionId(), auditEvent(DispatcherActor, "disabled", req.GetReason()), func(sub *Subscription) error {
		sub.Status, sub.StatusReason = int32(pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_DISABLED), req.GetReason()
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil, apierr.WithCode(apierr.NotFound, codeNoSubscription, "no such subscription")
	}
	if err != nil {
		return nil, err
	}
	s.changed(sub.ID)
	s.pvk.log.Warn("subscription disabled", "subscription_id", sub.ID, "subscriber", sub.Subscriber, "reason", req.GetReason())
	return &pvkv1.DisableSubscriptionResponse{Subscription: subscriptionProto(sub)}, nil
}

// DispatcherActor is the audit trail's actor for what the dispatcher does to a subscription.
const DispatcherActor = "dispatcher"

// auditEvent is an audit trail entry made now.
func auditEvent(actor, action, reason string) SubscriptionEvent {
	return SubscriptionEvent{Time: time.Now(), Actor: actor, Action: action, Reason: reason}
}

// ListSubscriptionEvents implements SubscriptionsService.
func (s *Subscriptions) ListSubscriptionEvents(ctx context.Context, req *pvkv1.ListSubscriptionEventsRequest) (*pvkv1.ListSubscriptionEventsResponse, error) {
	if _, err := s.own(ctx, req.GetSubscriptionId()); err != nil {
		return nil, err
	}
	events, err := s.pvk.store.SubscriptionEvents(ctx, req.GetSubscriptionId())
	if err != nil {
		return nil, err
	}
	resp := &pvkv1.ListSubscriptionEventsResponse{Events: []*pvkv1.SubscriptionEvent{}}
	for _, ev := range events {
		resp.Events = append(resp.Events, &pvkv1.SubscriptionEvent{Time: timestamppb.New(ev.Time), Actor: ev.Actor, Action: ev.Action,
			Reason: ev.Reason})
	}
	return resp, nil
}

// Run keeps the subscriptions' held status up to date, and deletes the durable consumers no subscription
// owns (see sweepConsumers), until ctx ends.
func (s *Subscriptions) Run(ctx context.Context) error {
	s.subscribers.OnChange(func(clientID string) {
		s.mu.Lock()
		s.changedClients[clientID] = true
		s.mu.Unlock()
		select {
		case s.reconcile <- struct{}{}:
		default:
		}
	})
	go s.followSubscribers(ctx)
	s.runConsumerSweep(ctx)
	return nil
}

func subscriptionProto(sub Subscription) *pvkv1.Subscription {
	out := &pvkv1.Subscription{SubscriptionId: sub.ID, SubscriberClientId: sub.Subscriber, Status: pvkv1.SubscriptionStatus(sub.Status),
		StatusReason: sub.StatusReason,
		CreateTime:   timestamppb.New(sub.CreateTime), Filters: &pvkv1.Filters{DefinisjonGuids: sub.Filters.DefinitionGUIDs,
			TypePis: sub.Filters.TypesPi, PartKoder: sub.Filters.PartKoder}}
	if sub.WebhookURL != "" {
		out.Webhook = &pvkv1.Webhook{Url: sub.WebhookURL, UseXAuthorization: sub.XAuth}
	}
	return out
}

// HeldPrefix starts the status_reason of an active subscription whose subscriber is cut off; the reason
// follows it.
const HeldPrefix = "delivery held: "

// heldSuffix ends a held subscription's status_reason.
const heldSuffix = "; changes are kept and delivered once the subscriber is reinstated"

// SubscriberCheckActor is the audit trail's actor for holding and releasing a subscription.
const SubscriberCheckActor = "subscriber-check"

// mayReceive refuses a pull by a subscriber that is cut off, saying why; its changes stay in the stream.
func (s *Subscriptions) mayReceive(ctx context.Context, clientID string) error {
	v, err := s.subscribers.Check(ctx, clientID, scope.PVKReplication)
	if err != nil {
		s.pvk.log.Warn("subscriber check", "subscriber", clientID, "err", err)
		return apierr.WithCode(apierr.Unavailable, codeSubscriptionHeld, "the subscriber could not be checked; retry later")
	}
	if !v.OK() {
		return apierr.WithCode(apierr.FailedPrecondition, codeSubscriptionHeld, "%s%s%s", HeldPrefix, v.Reason, heldSuffix)
	}
	return nil
}

// reconcileEvery is how often every subscription's held status is checked without a change event.
const reconcileEvery = 30 * time.Second

// followSubscribers reconciles the subscriptions of each client the registry announces a change of, and
// every subscription every reconcileEvery, until ctx ends.
func (s *Subscriptions) followSubscribers(ctx context.Context) {
	s.reconcileHolds(ctx, "")
	t := time.NewTicker(reconcileEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reconcileHolds(ctx, "")
		case <-s.reconcile:
			s.mu.Lock()
			changed := s.changedClients
			s.changedClients = map[string]bool{}
			s.mu.Unlock()
			for id := range changed {
				s.reconcileHolds(ctx, id)
			}
		}
	}
}

// errUnchanged leaves a subscription as it is.
var errUnchanged = errors.New("unchanged")

// reconcileHolds marks the active subscriptions of a subscriber (every subscriber when empty) held while
// it is cut off and clears the mark when it is reinstated, with an audit event each time, and tells the
// dispatcher.
func (s *Subscriptions) reconcileHolds(ctx context.Context, clientID string) {
	subs, err := s.pvk.store.ListSubscriptions(ctx, clientID)
	if err != nil {
		if ctx.Err() == nil {
			s.pvk.log.Error("list subscriptions", "err", err)
		}
		return
	}
	for _, sub := range subs {
		if sub.Status != int32(pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE) {
			continue
		}
		v, err := s.subscribers.Check(ctx, sub.Subscriber, scope.PVKReplication)
		if err != nil {
			continue // unknown: leave it as it is
		}
		want, ev := "", auditEvent(SubscriberCheckActor, "released", "the subscriber may receive again")
		if !v.OK() {
			want, ev = HeldPrefix+v.Reason+heldSuffix, auditEvent(SubscriberCheckActor, "held", v.Reason)
		}
		if sub.StatusReason == want {
			continue
		}
		_, err = s.pvk.store.UpdateSubscription(ctx, sub.ID, ev, func(sub *Subscription) error {
			if sub.Status != int32(pvkv1.SubscriptionStatus_SUBSCRIPTION_STATUS_ACTIVE) || sub.StatusReason == want {
				return errUnchanged
			}
			sub.StatusReason = want
			return nil
		})
		switch {
		case errors.Is(err, errUnchanged) || errors.Is(err, store.ErrNotFound):
		case err != nil:
			s.pvk.log.Error("hold subscription", "subscription_id", sub.ID, "err", err)
		default:
			s.pvk.log.Warn("subscription "+ev.Action, "subscription_id", sub.ID, "subscriber", sub.Subscriber, "cause", string(v.Cause))
			s.changed(sub.ID)
		}
	}
}
