package pvk

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	registryv1 "github.com/hnsec/hnsec/gen/hnsec/registry/v1"
	stsv1 "github.com/hnsec/hnsec/gen/hnsec/sts/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/authz"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/natsbus"
	"github.com/hnsec/hnsec/pkg/scope"
	"github.com/hnsec/hnsec/pkg/seal"
	"github.com/hnsec/hnsec/pkg/secrets"
	"github.com/hnsec/hnsec/pkg/store"
)

// Partitions is how many partitions change events are spread over: a citizen's changes always land in
// the same one, so consumers keep per-citizen order while working in parallel.
const Partitions = 64

// InternalMethods are the RPCs only other services (the dispatcher) may call.
var InternalMethods = []string{
	pvkv1.SubscriptionsService_ListWebhookTargets_FullMethodName,
	pvkv1.SubscriptionsService_DisableSubscription_FullMethodName,
}

// EventType is the CloudEvents type of a changed setting.
const EventType = "no.helsenorge.pvk.personverninnstilling.endret"

// Server implements PrivacySettingsService.
type Server struct {
	pvkv1.UnimplementedPrivacySettingsServiceServer
	cfg    Config
	store  Store
	writes *store.Batcher[*Write]
	relay  *relay
	bus    *natsbus.Bus
	// definitions caches definitions by guid: they never change once created.
	definitions  sync.Map
	partitionKey []byte
	// ackKey seals the ack ids of pulled changes; every replica reads the same one (pull_ack.go).
	ackKey        []byte
	introspection introspectionv1.IntrospectionServiceClient
	sts           stsv1.TokenServiceClient
	// admins is the principal check of definition management (see AuthorizeAdminsWith).
	admins authz.Admins
	// population answers whether a citizen exists (KnowCitizensBy; nil: everyone does).
	population Population
	source     string
	log        *slog.Logger
}

var _ pvkv1.PrivacySettingsServiceServer = (*Server)(nil)

// Open migrates PVK's database and returns the server. sealer (the key-encryption key) seals webhook
// secrets at rest; secrets an older version stored in the clear are sealed here. source is the CloudEvents
// source of its events. Run must be running for changes to reach the stream.
func Open(ctx context.Context, cfg Config, storeCfg store.Config, sealer *seal.Sealer, bus *natsbus.Bus, introspection introspectionv1.IntrospectionServiceClient,
	sts stsv1.TokenServiceClient, source string, reg prometheus.Registerer, log *slog.Logger) (*Server, *store.DB, error) {
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	if sealer == nil {
		return nil, nil, errors.New("pvk: a key-encryption key is required to seal webhook secrets")
	}
	js, err := newJetStream(bus.Conn)
	names := namesOf(bus)
	if err != nil {
		return nil, nil, err
	}
	// The stream exists before anything is served: subscriptions attach consumers to it.
	if err := ensureStream(ctx, js, names, cfg); err != nil {
		return nil, nil, err
	}
	db, err := store.Open(ctx, storeCfg, "pvk", Migrations)
	if err != nil {
		return nil, nil, err
	}
	st := &sqlStore{db: db, sealer: sealer}
	sealed, err := st.sealClearSecrets(ctx)
	if err != nil {
		_ = db.Close()
		return nil, nil, fmt.Errorf("seal webhook secrets: %w", err)
	}
	if sealed > 0 {
		log.Info("webhook secrets sealed under the key-encryption key", "subscriptions", sealed)
	}
	// The partition is a keyed hash of the fnr, so a subject never reveals whose change it carries.
	key, err := st.Key(ctx, "partition_key", secrets.NewKey)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	ackKey, err := st.Key(ctx, ackKeyName, secrets.NewKey)
	if err != nil {
		_ = db.Close()
		return nil, nil, err
	}
	s := &Server{cfg: cfg, store: st, relay: newRelay(st, js, names, cfg.OutboxRetention, reg), bus: bus, partitionKey: key, ackKey: ackKey,
		introspection: introspection, sts: sts, source: source, log: log}
	// Writes are group-committed: concurrent changes share one transaction and one fsync.
	s.writes = store.NewBatcher(maxBatch, 0, func(ctx context.Context, ws []*Write) error {
		if err := st.SetSettings(ctx, ws, s.event); err != nil {
			return err
		}
		s.relay.committed(ws, time.Now())
		return nil
	})
	return s, db, nil
}

// maxBatch bounds the setting writes in one transaction.
const maxBatch = 256

// Run writes settings and relays the outbox to the change stream until ctx ends; then it writes what is
// still queued.
func (s *Server) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.writes.Run(ctx) }()
	if s.cfg.Relay {
		s.relay.run(ctx, func(err error) { s.log.Error("outbox relay", "err", err) })
	}
	<-ctx.Done()
	return <-done
}

// AuthorizeAdminsWith sets the registry that answers who an admin caller is (definition management:
// operators only).
func (s *Server) AuthorizeAdminsWith(registry registryv1.ClientRegistryServiceClient) {
	s.admins = authz.Admins{Resolve: authz.STSResolver(s.sts), Registry: registry}
}

// requireScope checks the caller's access token through the introspection service.
func (s *Server) requireScope(ctx context.Context, need string) error {
	_, err := s.introspect(ctx, need)
	return err
}

// introspect returns the introspection answer for the caller's access token when it is active and
// carries the scope need, or one of the alternatives.
func (s *Server) introspect(ctx context.Context, need string, alternatives ...string) (*introspectionv1.IntrospectResponse, error) {
	return authz.Introspector{Client: s.introspection, UnauthenticatedCode: codeUnauthenticated, ForbiddenCode: codeForbidden}.
		Require(ctx, need, alternatives...)
}

// CreateDefinition implements PrivacySettingsService.
func (s *Server) CreateDefinition(ctx context.Context, req *pvkv1.CreateDefinitionRequest) (*pvkv1.CreateDefinitionResponse, error) {
	if _, err := s.admins.RequireOperator(ctx, pvkv1.PrivacySettingsService_CreateDefinition_FullMethodName); err != nil {
		return nil, err
	}
	d := req.GetDefinisjon()
	if err := checkGUID(d.GetDefinisjonGuid()); err != nil {
		return nil, err
	}
	if err := checkTypePi(d.GetTypePi()); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name, value string
		max         int
	}{{"definisjonNavn", d.GetDefinisjonNavn(), 200}, {"partKode", d.GetPartKode(), 100}} {
		if err := checkText(f.name, f.value, true, f.max); err != nil {
			return nil, err
		}
	}
	if len(d.GetOmfangElementer()) > 50 {
		return nil, invalid(codeDefinitionField, "omfangElementer may have at most 50 elements")
	}
	def := Definition{GUID: d.GetDefinisjonGuid(), Navn: d.GetDefinisjonNavn(), PartKode: d.GetPartKode(), TypePi: d.GetTypePi(),
		Omfang: []Omfang{}}
	for _, o := range d.GetOmfangElementer() {
		for _, f := range []struct{ name, value string }{{"omfangKode", o.GetOmfangKode()}, {"logiskOmfang", o.GetLogiskOmfang()},
			{"presisering", o.GetPresisering()}} {
			if err := checkText(f.name, f.value, false, 200); err != nil {
				return nil, err
			}
		}
		def.Omfang = append(def.Omfang, Omfang{Kode: o.GetOmfangKode(), Logisk: o.GetLogiskOmfang(), Presisering: o.GetPresisering()})
	}
	if err := s.store.CreateDefinition(ctx, def); err != nil {
		if errors.Is(err, store.ErrAlreadyExists) {
			return nil, apierr.WithCode(apierr.AlreadyExists, codeDefinitionTaken, "a definition with this definisjonGuid exists")
		}
		return nil, err
	}
	s.log.Info("privacy setting definition created", "definisjon_guid", def.GUID)
	return &pvkv1.CreateDefinitionResponse{Definisjon: definitionProto(def)}, nil
}

// ListDefinitions implements PrivacySettingsService.
func (s *Server) ListDefinitions(ctx context.Context, _ *pvkv1.ListDefinitionsRequest) (*pvkv1.ListDefinitionsResponse, error) {
	if err := s.requireEither(ctx); err != nil {
		return nil, err
	}
	defs, err := s.store.ListDefinitions(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pvkv1.ListDefinitionsResponse{}
	for _, d := range defs {
		resp.Definisjoner = append(resp.Definisjoner, definitionProto(d))
	}
	return resp, nil
}

// requireEither admits a caller with the read or the write scope.
func (s *Server) requireEither(ctx context.Context) error {
	_, err := s.introspect(ctx, scope.PVKRead, scope.PVKWrite)
	return err
}

// SettInnbyggersPersonvernInnstilling implements PrivacySettingsService.
func (s *Server) SettInnbyggersPersonvernInnstilling(ctx context.Context, req *pvkv1.SettInnbyggersPersonvernInnstillingRequest) (*pvkv1.SettInnbyggersPersonvernInnstillingResponse, error) {
	if err := s.requireScope(ctx, scope.PVKWrite); err != nil {
		return nil, err
	}
	if err := s.checkFnr(req.GetInnbyggerFnr()); err != nil {
		return nil, err
	}
	def, err := s.definition(ctx, req.GetDefinisjonGuid())
	if err != nil {
		return nil, err
	}
	if err := checkTypePi(req.GetTypePi()); err != nil {
		return nil, err
	}
	if req.GetTypePi() != def.TypePi {
		return nil, invalid(codeTypePiMismatch, "typePi does not match the definition (%s)", def.TypePi)
	}
	if err := checkPartKode(def, req.GetPartKode()); err != nil {
		return nil, err
	}
	if req.Aktiv == nil {
		return nil, invalid(codeAktiv, "aktiv is required (true or false)")
	}
	tidspunkt, err := parseTidspunkt(req.GetTidspunkt())
	if err != nil {
		return nil, err
	}
	evidence, err := parseEvidence(req.GetSignertBevisMimeType(), req.GetSignertBevisInnhold())
	if err != nil {
		return nil, err
	}
	if err := s.checkCitizen(ctx, req.GetInnbyggerFnr()); err != nil {
		return nil, err
	}
	w := &Write{In: Setting{Fnr: req.GetInnbyggerFnr(), DefinitionGUID: def.GUID, Aktiv: req.GetAktiv(), Tidspunkt: tidspunkt,
		EvidenceMime: req.GetSignertBevisMimeType(), Evidence: evidence, ChangeTime: time.Now().UTC(), Definition: def}}
	if err := s.writes.Submit(ctx, w); err != nil {
		return nil, err
	}
	resp := &pvkv1.SettInnbyggersPersonvernInnstillingResponse{ReturKode: "ok", InstansEndret: "ikkeEndret"}
	if w.Changed {
		resp.InstansEndret = "endret"
	}
	return resp, nil
}

// definition loads a definition named by the request.
func (s *Server) definition(ctx context.Context, id string) (Definition, error) {
	if err := checkGUID(id); err != nil {
		return Definition{}, err
	}
	if def, ok := s.definitions.Load(id); ok {
		return def.(Definition), nil
	}
	def, err := s.store.GetDefinition(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return Definition{}, apierr.WithCode(apierr.NotFound, codeNoDefinition, "no definition with this definisjonGuid")
	}
	if err == nil {
		s.definitions.Store(id, def)
	}
	return def, err
}

// EndringsnummerAttribute is the CloudEvents extension attribute of a change event that carries its
// endringsnummer: its position in the deployment's change stream, which orders changes across citizens
// and definitions (sekvensnummer, in data, counts one setting's changes only).
const EndringsnummerAttribute = "endringsnummer"

// event is the outbox row of a change: a CloudEvents 1.0 JSON event whose id is the change id, with the
// endringsnummer extension attribute.
func (s *Server) event(st Setting) (OutboxEvent, error) {
	id := guid.New()
	payload, err := json.Marshal(map[string]any{
		"specversion":           "1.0",
		"id":                    id,
		"source":                s.source,
		"type":                  EventType,
		"time":                  st.ChangeTime.Format(time.RFC3339Nano),
		"datacontenttype":       "application/json",
		EndringsnummerAttribute: st.Endringsnummer,
		"data": map[string]any{
			"innbyggerFnr":        st.Fnr,
			"definisjonGuid":      st.DefinitionGUID,
			"partKode":            st.Definition.PartKode,
			"typePi":              st.Definition.TypePi,
			"aktiv":               st.Aktiv,
			"tidspunkt":           st.Tidspunkt.Format(time.RFC3339Nano),
			"sekvensnummer":       st.Seq,
			"sistEndretTidspunkt": st.ChangeTime.Format(time.RFC3339Nano),
		},
	})
	return OutboxEvent{ChangeID: id, Partition: s.partition(st.Fnr), Payload: payload}, err
}

// partition maps a citizen to one of Partitions by a keyed hash.
func (s *Server) partition(fnr string) int {
	m := hmac.New(sha256.New, s.partitionKey)
	m.Write([]byte(fnr))
	return int(binary.BigEndian.Uint32(m.Sum(nil)) % Partitions)
}

// SjekkInnbyggersPiStatus implements PrivacySettingsService.
func (s *Server) SjekkInnbyggersPiStatus(ctx context.Context, req *pvkv1.SjekkInnbyggersPiStatusRequest) (*pvkv1.SjekkInnbyggersPiStatusResponse, error) {
	if err := s.requireScope(ctx, scope.PVKRead); err != nil {
		return nil, err
	}
	if err := s.checkFnr(req.GetInnbyggerFnr()); err != nil {
		return nil, err
	}
	def, err := s.definition(ctx, req.GetDefinisjonGuid())
	if err != nil {
		return nil, err
	}
	if err := checkPartKode(def, req.GetPartKode()); err != nil {
		return nil, err
	}
	if err := s.checkCitizen(ctx, req.GetInnbyggerFnr()); err != nil {
		return nil, err
	}
	st, err := s.store.GetSetting(ctx, req.GetInnbyggerFnr(), def.GUID)
	if errors.Is(err, store.ErrNotFound) {
		return statusProto(req.GetInnbyggerFnr(), def, nil), nil
	}
	if err != nil {
		return nil, err
	}
	return statusProto(req.GetInnbyggerFnr(), def, &st), nil
}

// HentInnbyggersPiForPart implements PrivacySettingsService.
func (s *Server) HentInnbyggersPiForPart(ctx context.Context, req *pvkv1.HentInnbyggersPiForPartRequest) (*pvkv1.HentInnbyggersPiForPartResponse, error) {
	if err := s.requireScope(ctx, scope.PVKRead); err != nil {
		return nil, err
	}
	if err := s.checkFnr(req.GetInnbyggerFnr()); err != nil {
		return nil, err
	}
	if req.GetPartKode() == "" || len(req.GetPartKode()) > 100 {
		return nil, invalid(codePartKode, "partKode must be 1 to 100 characters")
	}
	if err := s.checkCitizen(ctx, req.GetInnbyggerFnr()); err != nil {
		return nil, err
	}
	settings, err := s.store.ActiveForPart(ctx, req.GetInnbyggerFnr(), req.GetPartKode())
	if err != nil {
		return nil, err
	}
	resp := &pvkv1.HentInnbyggersPiForPartResponse{PersonvernInnstillinger: []*pvkv1.Personverninnstilling{}}
	for _, st := range settings {
		resp.PersonvernInnstillinger = append(resp.PersonvernInnstillinger, settingProto(st))
	}
	return resp, nil
}

// Page sizes of HentInnbyggereAktivePiForDefinisjon.
const (
	defaultSyncPage = 500
	maxSyncPage     = 1000
)

// HentInnbyggereAktivePiForDefinisjon implements PrivacySettingsService.
func (s *Server) HentInnbyggereAktivePiForDefinisjon(ctx context.Context, req *pvkv1.HentInnbyggereAktivePiForDefinisjonRequest) (*pvkv1.HentInnbyggereAktivePiForDefinisjonResponse, error) {
	if err := s.requireScope(ctx, scope.PVKRead); err != nil {
		return nil, err
	}
	def, err := s.definition(ctx, req.GetDefinisjonGuid())
	if err != nil {
		return nil, err
	}
	if err := checkPartKode(def, req.GetPartKode()); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	switch {
	case size < 0 || size > maxSyncPage || req.GetPagingReference() < 0:
		return nil, invalid(codePaging, "pageSize must be between 0 and %d and pagingReference not negative", maxSyncPage)
	case size == 0:
		size = defaultSyncPage
	}
	settings, err := s.store.ActiveForDefinition(ctx, def.GUID, req.GetPagingReference(), size+1)
	if err != nil {
		return nil, err
	}
	var next int64
	if len(settings) > size {
		settings = settings[:size]
		next = settings[size-1].Endringsnummer // the store pages by it
	}
	return activePageProto(def, settings, next), nil
}

func definitionProto(d Definition) *pvkv1.Definisjon {
	out := &pvkv1.Definisjon{DefinisjonGuid: d.GUID, DefinisjonNavn: d.Navn, PartKode: d.PartKode, TypePi: d.TypePi}
	for _, o := range d.Omfang {
		out.OmfangElementer = append(out.OmfangElementer, &pvkv1.OmfangElement{OmfangKode: o.Kode, LogiskOmfang: o.Logisk, Presisering: o.Presisering})
	}
	return out
}

func settingProto(st Setting) *pvkv1.Personverninnstilling {
	return &pvkv1.Personverninnstilling{
		InnbyggerFnr: st.Fnr, DefinisjonGuid: st.DefinitionGUID, DefinisjonNavn: st.Definition.Navn, PartKode: st.Definition.PartKode,
		TypePi: st.Definition.TypePi, Aktiv: st.Aktiv, Tidspunkt: st.Tidspunkt.Format(time.RFC3339Nano), Sekvensnummer: st.Seq,
		OpprettetTidspunkt: st.CreateTime.Format(time.RFC3339Nano), SistEndretTidspunkt: st.ChangeTime.Format(time.RFC3339Nano),
	}
}

// DemoDefinition is the definition dev mode seeds.
var DemoDefinition = Definition{GUID: "6f1c2d3e-0000-4000-8000-0000000000a1", Navn: "Demo samtykke", PartKode: "DEMO", TypePi: "samtykke",
	Omfang: []Omfang{{Kode: "DEMO", Logisk: "Demo-data", Presisering: "Seeded in dev mode"}}}

// Bootstrap seeds DemoDefinition in dev mode.
func (s *Server) Bootstrap(ctx context.Context, dev bool) error {
	if !dev {
		return nil
	}
	if err := s.store.CreateDefinition(ctx, DemoDefinition); err != nil && !errors.Is(err, store.ErrAlreadyExists) {
		return err
	}
	return nil
}
