package gateway

import (
	"net/http"
	"strings"

	"github.com/hnsec/hnsec/pkg/correlation"
)

// PVKCorrelationHeader is the real PVK's correlation header: PVK's answers carry it besides
// X-Correlation-Id, with the same id, and a request may give it instead of X-Correlation-Id.
const PVKCorrelationHeader = "CorrelationId"

// pvkSegments are the spellings of PVK's path segments as the HTTP rules have them. The real PVK matches
// its paths without regard to case (Helsenorge's pages write PersonvernInnstillinger, clients
// sjekkinnbyggerspistatus), so pvkPaths rewrites each segment that equals one of these but for case to
// this spelling before routing.
var pvkSegments = []string{
	"personvern", "Personverninnstillinger", "v1", "v2",
	"SettInnbyggersPersonvernInnstilling", "SjekkInnbyggersPiStatus", "HentInnbyggersPiForPart",
	"HentInnbyggereAktivePiForDefinisjon", "settinnbyggersinkludering", "hentinnbyggersinkludering",
}

// pvkPaths serves PVK's paths as the real PVK does, in front of routing and the korrelasjonsId: a path whose
// first segment is personvern (any case) has its known segments rewritten to the spelling of the HTTP
// rules, and every PVK answer (/personvern/, /pvk/) carries the korrelasjonsId in the CorrelationId header
// too. A request's CorrelationId (a GUID) is taken when it gives no X-Correlation-Id.
func pvkPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := canonicalPVKPath(r.URL.Path); ok && p != r.URL.Path {
			u := *r.URL
			u.Path, u.RawPath = p, ""
			r = r.Clone(r.Context())
			r.URL = &u
		}
		if !isPVK(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		id := r.Header.Get(correlation.Header)
		if !correlation.Valid(id) {
			id = r.Header.Get(PVKCorrelationHeader)
			if !correlation.Valid(id) {
				id = correlation.New()
			}
			if r.Header == nil {
				r.Header = http.Header{}
			}
			r.Header.Set(correlation.Header, id) // withCorrelation takes it from here
		}
		w.Header()[PVKCorrelationHeader] = []string{id} // as PVK spells it, not canonicalised to Correlationid
		next.ServeHTTP(w, r)
	})
}

// canonicalPVKPath returns path with its known PVK segments in the HTTP rules' spelling, and whether path
// is under /personvern/ (any case).
func canonicalPVKPath(path string) (string, bool) {
	first, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !strings.HasPrefix(path, "/") || !strings.EqualFold(first, "personvern") {
		return path, false
	}
	segs := strings.Split(path, "/")
	for i, seg := range segs {
		for _, known := range pvkSegments {
			if seg != known && strings.EqualFold(seg, known) {
				segs[i] = known
				break
			}
		}
	}
	return strings.Join(segs, "/"), true
}
