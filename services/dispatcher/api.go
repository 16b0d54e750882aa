package dispatcher

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	dispatcherv1 "github.com/hnsec/hnsec/gen/hnsec/dispatcher/v1"
	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/authz"
	"github.com/hnsec/hnsec/pkg/guid"
)

// Error codes of the deliveries API, which is part of PVK's face (/pvk/v1/subscriptions/...).
const (
	codeDeliveries   = "EPVK-100070"
	codeNotAWebhook  = "EPVK-100071"
	codeBadPageToken = "EPVK-100072"
	defaultPageSize  = 100
	maxPageSize      = 500
)

// own checks with PVK, on the caller's own access token, that the caller may see the subscription (PVK
// answers permission denied for another's and for none alike) and that it is a webhook subscription.
func (s *Server) own(ctx context.Context, id string) error {
	if !guid.Valid(id) {
		return apierr.WithCode(apierr.InvalidRequest, codeDeliveries, "subscription_id must be a GUID")
	}
	md := metadata.Pairs("authorization", "Bearer "+authz.BearerToken(ctx))
	resp, err := s.pvk.GetSubscription(metadata.NewOutgoingContext(ctx, md), &pvkv1.GetSubscriptionRequest{SubscriptionId: id})
	if err != nil {
		return err
	}
	if resp.GetSubscription().GetWebhook().GetUrl() == "" {
		return apierr.WithCode(apierr.FailedPrecondition, codeNotAWebhook, "a pull subscription has no webhook deliveries")
	}
	return nil
}

// pageSize checks a requested page size.
func pageSize(n int32) (int, error) {
	switch {
	case n == 0:
		return defaultPageSize, nil
	case n < 0 || n > maxPageSize:
		return 0, apierr.WithCode(apierr.InvalidRequest, codeDeliveries, "page_size must be 1 to %d", maxPageSize)
	}
	return int(n), nil
}

var errPageToken = apierr.WithCode(apierr.InvalidRequest, codeBadPageToken, "page_token is not one this API gave")

// ListDeliveryAttempts implements DeliveriesService.
func (s *Server) ListDeliveryAttempts(ctx context.Context, req *dispatcherv1.ListDeliveryAttemptsRequest) (*dispatcherv1.ListDeliveryAttemptsResponse, error) {
	if err := s.own(ctx, req.GetSubscriptionId()); err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var before int64
	if req.GetPageToken() != "" {
		raw, err := base64.RawURLEncoding.DecodeString(req.GetPageToken())
		if before, _ = strconv.ParseInt(string(raw), 10, 64); err != nil || before <= 0 {
			return nil, errPageToken
		}
	}
	ids, list, err := s.store.attempts(ctx, req.GetSubscriptionId(), before, size+1)
	if err != nil {
		return nil, err
	}
	resp := &dispatcherv1.ListDeliveryAttemptsResponse{Attempts: []*dispatcherv1.DeliveryAttempt{}}
	if len(list) > size {
		list = list[:size]
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(ids[size-1], 10)))
	}
	for _, a := range list {
		resp.Attempts = append(resp.Attempts, &dispatcherv1.DeliveryAttempt{ChangeId: a.ChangeID, Sekvensnummer: a.Sekvensnummer,
			Attempt: int32(a.Attempt), Time: timestamppb.New(a.Time), StatusCode: int32(a.StatusCode), Latency: durationpb.New(a.Latency),
			ErrorClass: a.ErrorClass})
	}
	return resp, nil
}

// ListDeadLetters implements DeliveriesService.
func (s *Server) ListDeadLetters(ctx context.Context, req *dispatcherv1.ListDeadLettersRequest) (*dispatcherv1.ListDeadLettersResponse, error) {
	if err := s.own(ctx, req.GetSubscriptionId()); err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var afterTime int64
	var afterID string
	if req.GetPageToken() != "" {
		raw, err := base64.RawURLEncoding.DecodeString(req.GetPageToken())
		ms, id, ok := strings.Cut(string(raw), ":")
		if afterTime, _ = strconv.ParseInt(ms, 10, 64); err != nil || !ok || afterTime <= 0 || !guid.Valid(id) {
			return nil, errPageToken
		}
		afterID = id
	}
	list, err := s.store.deadLetters(ctx, req.GetSubscriptionId(), afterTime, afterID, size+1)
	if err != nil {
		return nil, err
	}
	resp := &dispatcherv1.ListDeadLettersResponse{DeadLetters: []*dispatcherv1.DeadLetter{}}
	if len(list) > size {
		list = list[:size]
		last := list[size-1]
		resp.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(last.DeadTime.UnixMilli(), 10) + ":" + last.ChangeID))
	}
	for _, p := range list {
		resp.DeadLetters = append(resp.DeadLetters, &dispatcherv1.DeadLetter{ChangeId: p.ChangeID, Sekvensnummer: p.Sekvensnummer,
			Attempts: int32(p.Attempts), LastErrorClass: p.LastErrorClass, LastStatusCode: int32(p.LastStatusCode),
			DeadTime: timestamppb.New(p.DeadTime)})
	}
	return resp, nil
}

// ReplayDeadLetters implements DeliveriesService.
func (s *Server) ReplayDeadLetters(ctx context.Context, req *dispatcherv1.ReplayDeadLettersRequest) (*dispatcherv1.ReplayDeadLettersResponse, error) {
	if err := s.own(ctx, req.GetSubscriptionId()); err != nil {
		return nil, err
	}
	if (req.GetChangeId() == "") == (req.GetSince() == nil) {
		return nil, apierr.WithCode(apierr.InvalidRequest, codeDeliveries, "name exactly one of changeId and since")
	}
	n, err := s.store.replay(ctx, req.GetSubscriptionId(), req.GetChangeId(), req.GetSince().AsTime())
	if err != nil {
		return nil, err
	}
	if n > 0 {
		if err := s.tellWorker(ctx, req.GetSubscriptionId()); err != nil {
			// Replayed all the same: the worker's retry loop finds the changes due within a tick and from
			// then on queues their citizens' newer changes behind them.
			s.log.Warn("replayed dead letters: the worker was not told", "subscription_id", req.GetSubscriptionId(), "err", err)
		}
	}
	s.log.Info("dead letters replayed", "subscription_id", req.GetSubscriptionId(), "count", n)
	return &dispatcherv1.ReplayDeadLettersResponse{Replayed: int32(n)}, nil
}

// subjectDeadLettersReplayed, followed by a subscription id, is the subject on which the worker of the
// subscription, on whichever dispatcher replica runs it, hears that dead letters were replayed; it
// answers "ok" once the replayed changes' citizens are marked parked, so their newer changes queue
// behind them. Dispatcher replicas alone use it.
const subjectDeadLettersReplayed = "hnsec.dispatcher.dead_letters.replayed"

// replayNoticeTimeout bounds the wait for the worker's answer.
const replayNoticeTimeout = 5 * time.Second

// replayedSubject is the replay subject of a subscription.
func (s *Server) replayedSubject(id string) string {
	return s.bus.Subject(subjectDeadLettersReplayed + "." + id)
}

// tellWorker has the worker running a subscription, here or on another replica, mark the citizens with
// replayed changes parked. With no worker running nothing is needed: a worker reads them when it starts.
func (s *Server) tellWorker(ctx context.Context, id string) error {
	if w := s.worker(id); w != nil {
		return w.refreshParked(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, replayNoticeTimeout)
	defer cancel()
	m, err := s.bus.Conn.RequestWithContext(ctx, s.replayedSubject(id), nil)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return nil
	case err != nil:
		return err
	case string(m.Data) != "ok":
		return errors.New("the worker could not read the replayed changes")
	}
	return nil
}
