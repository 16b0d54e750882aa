package pvk

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/store"
)

// InclusionEventType is the CloudEvents type of a changed inclusion.
const InclusionEventType = "no.helsenorge.pvk.inkludering.endret"

// InkluderingTypes are the kinds of inclusion with a party.
var InkluderingTypes = []string{"inkludert", "deltager", "oppfort"}

// PVK's codes of inclusions (ours).
const codeInkluderingType = "EPVK-100080"

// Inclusion is a citizen's inclusion of one type with a party.
type Inclusion struct {
	Fnr, PartKode, Type string
	Aktiv               bool
	// Seq is the sekvensnummer: it counts this inclusion's changes, from 1.
	Seq int64
	// Endringsnummer is the position of its last change in the change stream.
	Endringsnummer         int64
	CreateTime, ChangeTime time.Time
}

// SettInnbyggersInkludering implements PrivacySettingsService.
func (s *Server) SettInnbyggersInkludering(ctx context.Context, req *pvkv1.SettInnbyggersInkluderingRequest) (*pvkv1.SettInnbyggersInkluderingResponse, error) {
	if err := s.requireScope(ctx, scope.PVKWrite); err != nil {
		return nil, err
	}
	if err := s.checkFnr(req.GetInnbyggerFnr()); err != nil {
		return nil, err
	}
	if err := checkInclusionPart(req.GetPartKode()); err != nil {
		return nil, err
	}
	if !slices.Contains(InkluderingTypes, req.GetInkluderingType()) {
		return nil, invalid(codeInkluderingType, "inkluderingType must be inkludert, deltager or oppfort")
	}
	if req.Aktiv == nil {
		return nil, invalid(codeAktiv, "aktiv is required (true or false)")
	}
	in := Inclusion{Fnr: req.GetInnbyggerFnr(), PartKode: req.GetPartKode(), Type: req.GetInkluderingType(), Aktiv: req.GetAktiv(),
		ChangeTime: time.Now().UTC()}
	id, err := s.store.SetInclusion(ctx, in, s.inclusionEvent)
	if err != nil {
		return nil, err
	}
	resp := &pvkv1.SettInnbyggersInkluderingResponse{ReturKode: "ok", InstansEndret: "ikkeEndret"}
	if id != 0 {
		resp.InstansEndret = "endret"
		s.relay.committed([]*Write{{Changed: true, OutboxID: id}}, time.Now())
	}
	return resp, nil
}

// HentInnbyggersInkludering implements PrivacySettingsService.
func (s *Server) HentInnbyggersInkludering(ctx context.Context, req *pvkv1.HentInnbyggersInkluderingRequest) (*pvkv1.HentInnbyggersInkluderingResponse, error) {
	if err := s.requireScope(ctx, scope.PVKRead); err != nil {
		return nil, err
	}
	if err := s.checkFnr(req.GetInnbyggerFnr()); err != nil {
		return nil, err
	}
	if err := checkInclusionPart(req.GetPartKode()); err != nil {
		return nil, err
	}
	list, err := s.store.Inclusions(ctx, req.GetInnbyggerFnr(), req.GetPartKode())
	if err != nil {
		return nil, err
	}
	resp := &pvkv1.HentInnbyggersInkluderingResponse{Inkluderinger: []*pvkv1.Inkludering{}}
	for _, in := range list {
		resp.Inkluderinger = append(resp.Inkluderinger, &pvkv1.Inkludering{InnbyggerFnr: in.Fnr, PartKode: in.PartKode,
			InkluderingType: in.Type, Aktiv: in.Aktiv, Sekvensnummer: in.Seq, OpprettetTidspunkt: in.CreateTime.Format(time.RFC3339Nano),
			SistEndretTidspunkt: in.ChangeTime.Format(time.RFC3339Nano)})
	}
	return resp, nil
}

// checkInclusionPart checks the partKode of an inclusion request.
func checkInclusionPart(p string) error {
	if p == "" || len(p) > 100 {
		return invalid(codePartKode, "partKode must be 1 to 100 characters")
	}
	return nil
}

// inclusionEvent is the outbox row of an inclusion's change, a CloudEvents 1.0 JSON event on the citizen's
// partition like a setting's: subscriptions without a definisjonGuid or typePi filter receive it.
func (s *Server) inclusionEvent(in Inclusion) (OutboxEvent, error) {
	id := guid.New()
	payload, err := json.Marshal(map[string]any{
		"specversion":           "1.0",
		"id":                    id,
		"source":                s.source,
		"type":                  InclusionEventType,
		"time":                  in.ChangeTime.Format(time.RFC3339Nano),
		"datacontenttype":       "application/json",
		EndringsnummerAttribute: in.Endringsnummer,
		"data": map[string]any{
			"innbyggerFnr":        in.Fnr,
			"partKode":            in.PartKode,
			"inkluderingType":     in.Type,
			"aktiv":               in.Aktiv,
			"sekvensnummer":       in.Seq,
			"sistEndretTidspunkt": in.ChangeTime.Format(time.RFC3339Nano),
		},
	})
	return OutboxEvent{ChangeID: id, Partition: s.partition(in.Fnr), Payload: payload}, err
}

func (s *sqlStore) SetInclusion(ctx context.Context, in Inclusion, event func(Inclusion) (OutboxEvent, error)) (int64, error) {
	var id int64
	err := s.db.Tx(ctx, func(tx *sql.Tx) error {
		// The sequence row first, as SetSettings: changes of one inclusion from two replicas are one change.
		if _, err := tx.ExecContext(ctx, `SELECT value FROM sequence WHERE id = 1`+s.db.ForUpdate()); err != nil {
			return err
		}
		var aktiv bool
		var created, seq int64
		err := tx.QueryRowContext(ctx, `SELECT aktiv, create_time_ms, sekvensnummer FROM inclusions
			WHERE fnr = ? AND part_kode = ? AND inkludering_type = ?`, in.Fnr, in.PartKode, in.Type).Scan(&aktiv, &created, &seq)
		switch {
		case err == nil && aktiv == in.Aktiv:
			return nil
		case err == nil:
			in.CreateTime, in.Seq = time.UnixMilli(created), seq+1
		case errors.Is(err, sql.ErrNoRows):
			in.CreateTime, in.Seq = in.ChangeTime, 1
		default:
			return err
		}
		if in.Seq > math.MaxInt32 {
			return fmt.Errorf("pvk store: an inclusion's sekvensnummer would pass %d", math.MaxInt32)
		}
		if err := tx.QueryRowContext(ctx, `UPDATE sequence SET value = value + 1 WHERE id = 1 RETURNING value`).Scan(&in.Endringsnummer); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO inclusions (fnr, part_kode, inkludering_type, aktiv, sekvensnummer, endringsnummer,
			create_time_ms, change_time_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (fnr, part_kode, inkludering_type) DO UPDATE SET aktiv = excluded.aktiv, sekvensnummer = excluded.sekvensnummer,
			endringsnummer = excluded.endringsnummer, change_time_ms = excluded.change_time_ms`,
			in.Fnr, in.PartKode, in.Type, in.Aktiv, in.Seq, in.Endringsnummer, in.CreateTime.UnixMilli(), in.ChangeTime.UnixMilli()); err != nil {
			return err
		}
		ev, err := event(in)
		if err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO outbox (change_id, partition, payload, create_time_ms) VALUES (?, ?, ?, ?) RETURNING id`,
			ev.ChangeID, ev.Partition, ev.Payload, in.ChangeTime.UnixMilli()).Scan(&id)
	})
	return id, err
}

func (s *sqlStore) Inclusions(ctx context.Context, fnr, partKode string) ([]Inclusion, error) {
	return store.Query(ctx, s.db, `SELECT fnr, part_kode, inkludering_type, aktiv, sekvensnummer, endringsnummer, create_time_ms,
		change_time_ms FROM inclusions WHERE fnr = ? AND part_kode = ? ORDER BY inkludering_type`, []any{fnr, partKode},
		func(sc store.Scanner) (Inclusion, error) {
			var in Inclusion
			var created, changed int64
			err := sc.Scan(&in.Fnr, &in.PartKode, &in.Type, &in.Aktiv, &in.Seq, &in.Endringsnummer, &created, &changed)
			in.CreateTime, in.ChangeTime = time.UnixMilli(created).UTC(), time.UnixMilli(changed).UTC()
			return in, err
		})
}
