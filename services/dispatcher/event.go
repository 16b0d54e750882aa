package dispatcher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	pvkv1 "github.com/hnsec/hnsec/gen/hnsec/pvk/v1"
)

// event is the part of a PVK change event (CloudEvents JSON) the dispatcher reads.
type event struct {
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	// Endringsnummer is the change's position in PVK's change stream (a CloudEvents extension attribute):
	// it orders a citizen's changes across definitions, which sekvensnummer (one setting's count) cannot.
	Endringsnummer int64 `json:"endringsnummer"`
	Data           struct {
		Fnr            string `json:"innbyggerFnr"`
		DefinitionGUID string `json:"definisjonGuid"`
		TypePi         string `json:"typePi"`
		PartKode       string `json:"partKode"`
		Sekvensnummer  int64  `json:"sekvensnummer"`
	} `json:"data"`
}

// parseChange reads a change event. The citizen key orders a citizen's changes without naming the fnr.
func parseChange(payload []byte) (change, event, error) {
	var ev event
	if err := json.Unmarshal(payload, &ev); err != nil || ev.ID == "" || ev.Data.Fnr == "" {
		return change{}, ev, fmt.Errorf("not a PVK change event")
	}
	sum := sha256.Sum256([]byte(ev.Data.Fnr))
	position := ev.Endringsnummer
	if position == 0 { // written before the endringsnummer, when data.sekvensnummer was the stream position
		position = ev.Data.Sekvensnummer
	}
	return change{ChangeID: ev.ID, CitizenKey: hex.EncodeToString(sum[:16]), Sekvensnummer: ev.Data.Sekvensnummer, Endringsnummer: position,
		Payload: payload, EventTime: ev.Time}, ev, nil
}

// filters select a subscription's changes; an empty list matches everything.
type filters struct {
	definitions, typesPi, partKoder []string
}

func filtersOf(f *pvkv1.Filters) filters {
	return filters{definitions: f.GetDefinisjonGuids(), typesPi: f.GetTypePis(), partKoder: f.GetPartKoder()}
}

func (f filters) matches(ev event) bool {
	in := func(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
	return in(f.definitions, ev.Data.DefinitionGUID) && in(f.typesPi, ev.Data.TypePi) && in(f.partKoder, ev.Data.PartKode)
}
