package pvk

import (
	"context"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
	"github.com/hnsec/hnsec/pkg/apierr"
)

// The real PVK's codes that real clients act on (NORPREG's PVK broker tells its user "no citizen with
// innbyggerFnr" for EPVK-101518 and "check definisjonGuid / partKode" for EPVK-101500).
const (
	codePartKodeMismatch = "EPVK-101500"
	codeNoCitizen        = "EPVK-101518"
)

// Population answers whether the population register knows a citizen: PVK refuses a citizen it does not
// know with EPVK-101518, as the real PVK does.
type Population interface {
	// Known reports whether the register has a person with the national identity number fnr.
	Known(ctx context.Context, fnr string) (bool, error)
}

// everyoneKnown is the Population until the population-register stand-in is wired in: it knows every
// valid number, so EPVK-101518 is never answered yet.
type everyoneKnown struct{}

func (everyoneKnown) Known(context.Context, string) (bool, error) { return true, nil }

// KnowCitizensBy has PVK ask p whether a citizen exists (the population-register stand-in). Without it
// every valid number is a known citizen. Call it before serving.
func (s *Server) KnowCitizensBy(p Population) { s.population = p }

// checkCitizen refuses a citizen the population register does not know (EPVK-101518).
func (s *Server) checkCitizen(ctx context.Context, fnr string) error {
	p := s.population
	if p == nil {
		p = everyoneKnown{}
	}
	known, err := p.Known(ctx, fnr)
	if err != nil {
		return err
	}
	if !known {
		return apierr.WithCode(apierr.NotFound, codeNoCitizen, "no citizen with this innbyggerFnr")
	}
	return nil
}

// checkPartKode refuses a partKode that is not the definition's (EPVK-101500): a definition belongs to one
// party. An absent partKode is not checked.
func checkPartKode(def Definition, partKode string) error {
	if partKode != "" && partKode != def.PartKode {
		return invalid(codePartKodeMismatch, "partKode does not match the definition: check definisjonGuid / partKode")
	}
	return nil
}

// statusProto is SjekkInnbyggersPiStatus's answer for a stored setting, or for none (st nil): aktiv false,
// without sekvensnummer and times.
func statusProto(fnr string, def Definition, st *Setting) *pvkv1.SjekkInnbyggersPiStatusResponse {
	out := &pvkv1.SjekkInnbyggersPiStatusResponse{InnbyggerFnr: fnr, DefinisjonGuid: def.GUID, DefinisjonNavn: def.Navn,
		PartKode: def.PartKode, TypePi: def.TypePi}
	if st == nil {
		return out
	}
	p := settingProto(*st)
	out.Aktiv = p.GetAktiv()
	out.Tidspunkt, out.Sekvensnummer = &p.Tidspunkt, &p.Sekvensnummer
	out.OpprettetTidspunkt, out.SistEndretTidspunkt = &p.OpprettetTidspunkt, &p.SistEndretTidspunkt
	return out
}

// activePageProto is one page of HentInnbyggereAktivePiForDefinisjon: the definition at top level, then
// each citizen's setting.
func activePageProto(def Definition, settings []Setting, pagingReference int64) *pvkv1.HentInnbyggereAktivePiForDefinisjonResponse {
	out := &pvkv1.HentInnbyggereAktivePiForDefinisjonResponse{PagingReference: pagingReference, DefinisjonGuid: def.GUID,
		DefinisjonNavn: def.Navn, PartKode: def.PartKode, TypePi: def.TypePi,
		ReFasteMetadata:         &pvkv1.ReFasteMetadata{OmfangElementer: definitionProto(def).GetOmfangElementer()},
		PersonvernInnstillinger: make([]*pvkv1.AktivPersonverninnstilling, 0, len(settings))}
	if out.ReFasteMetadata.OmfangElementer == nil {
		out.ReFasteMetadata.OmfangElementer = []*pvkv1.OmfangElement{}
	}
	for _, st := range settings {
		p := settingProto(st)
		out.PersonvernInnstillinger = append(out.PersonvernInnstillinger, &pvkv1.AktivPersonverninnstilling{InnbyggerFnr: st.Fnr,
			Sekvensnummer: p.GetSekvensnummer(), OpprettetTidspunkt: p.GetOpprettetTidspunkt(), SistEndretTidspunkt: p.GetSistEndretTidspunkt()})
	}
	return out
}
