package registry

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/correlation"
)

// auditKey carries the acting principal in a context.
type auditKey struct{}

// withActor returns ctx naming p as the actor of the changes made with it.
func withActor(ctx context.Context, p principal) context.Context {
	return context.WithValue(ctx, auditKey{}, p)
}

// change describes one audited change: the object and its state before and after (nil when it did not
// exist, or no longer does). Never secret material: secrets appear by metadata only.
type change struct {
	objectType, objectID string
	before, after        any
}

// actionKey carries, in a context, the action to audit when it is not the RPC the context carries
// (AuthorizeAdmin records what another service allowed).
type actionKey struct{}

// AuditEvent is one recorded change.
type AuditEvent struct {
	ID             int64
	Time           time.Time
	ActorClientID  string
	ActorRole      string
	Action         string
	ObjectType     string
	ObjectID       string
	Before, After  string
	KorrelasjonsID string
}

// recordAudit writes the change to the audit trail in the change's own transaction: who (the principal
// in ctx, or "system"), what (the RPC and the object), when, and before/after as JSON.
func recordAudit(ctx context.Context, tx *sql.Tx, c change) error {
	actor, role := "system", "system"
	if p, ok := ctx.Value(auditKey{}).(principal); ok {
		actor, role = p.clientID, registryv1.Role_name[int32(p.role)]
	}
	action, _ := grpc.Method(ctx)
	if a, ok := ctx.Value(actionKey{}).(string); ok {
		action = a
	}
	if action == "" {
		action = "bootstrap"
	}
	before, err := auditJSON(c.before)
	if err != nil {
		return err
	}
	after, err := auditJSON(c.after)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_events (time_ms, actor_client_id, actor_role, action, object_type, object_id,
		before_json, after_json, korrelasjons_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`, time.Now().UnixMilli(), actor, role, action,
		c.objectType, c.objectID, before, after, correlation.From(ctx))
	return err
}

func auditJSON(v any) (string, error) {
	if v == nil {
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}

// secretMetadata is what the audit trail keeps of a secret.
func secretMetadata(sec Secret) map[string]any {
	m := map[string]any{"id": sec.ID, "create_time": sec.CreateTime}
	if !sec.ExpireTime.IsZero() {
		m["expire_time"] = sec.ExpireTime
	}
	return m
}

// ListAuditEvents implements ClientRegistryService.
func (s *Server) ListAuditEvents(ctx context.Context, req *registryv1.ListAuditEventsRequest) (*registryv1.ListAuditEventsResponse, error) {
	if _, _, err := s.operator(ctx); err != nil {
		return nil, err
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	var before int64
	if pg.After != "" {
		if before, err = strconv.ParseInt(pg.After, 10, 64); err != nil {
			return nil, apierr.New(apierr.InvalidRequest, "page_token is not one this API returned")
		}
	}
	events, err := s.store.ListAuditEvents(ctx, req.GetObjectType(), req.GetObjectId(), before, pg.Limit)
	if err != nil {
		return nil, err
	}
	events, next := nextPage(events, pg, func(e AuditEvent) string { return strconv.FormatInt(e.ID, 10) })
	resp := &registryv1.ListAuditEventsResponse{NextPageToken: next}
	for _, e := range events {
		resp.Events = append(resp.Events, &registryv1.AuditEvent{EventId: e.ID, Time: timestamppb.New(e.Time), ActorClientId: e.ActorClientID,
			ActorRole: e.ActorRole, Action: e.Action, ObjectType: e.ObjectType, ObjectId: e.ObjectID, Before: e.Before, After: e.After,
			KorrelasjonsId: e.KorrelasjonsID})
	}
	return resp, nil
}
