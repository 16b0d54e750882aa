package pvk

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hnsec/hnsec/pkg/apierr"
	"github.com/hnsec/hnsec/pkg/fnr"
	"github.com/hnsec/hnsec/pkg/guid"
	"github.com/hnsec/hnsec/pkg/text"
)

// PVK's error codes (our numbering; the real PVK's catalogue is not public).
const (
	codeFnrLength       = "EPVK-100001"
	codeFnrCheckDigit   = "EPVK-100002"
	codeFnrDate         = "EPVK-100003"
	codeFnrSynthetic    = "EPVK-100004"
	codeDefinitionGUID  = "EPVK-100010"
	codeNoDefinition    = "EPVK-100011"
	codeTypePiMismatch  = "EPVK-100012"
	codeTypePiUnknown   = "EPVK-100013"
	codeDefinitionField = "EPVK-100014"
	codeDefinitionTaken = "EPVK-100015"
	codeTidspunkt       = "EPVK-100020"
	codeAktiv           = "EPVK-100021"
	codeEvidenceMime    = "EPVK-100030"
	codeEvidenceBase64  = "EPVK-100031"
	codeEvidenceSize    = "EPVK-100032"
	codeEvidencePair    = "EPVK-100033"
	codePartKode        = "EPVK-100040"
	codePaging          = "EPVK-100050"
	codeUnauthenticated = "EPVK-101401"
	codeForbidden       = "EPVK-101403"
)

// TypesPi are the kinds of privacy setting.
var TypesPi = []string{"samtykke", "reservasjon", "tilgangsbegrensning"}

// EvidenceMimeTypes are the signed evidence types accepted: the real PVK's (images of a signed form, and
// PDF), then ours.
var EvidenceMimeTypes = []string{"image/png", "image/jpeg", "image/bmp", "application/pdf", "application/xml", "application/json",
	"application/jose", "text/plain"}

// MaxEvidenceBytes bounds decoded signed evidence (4 MiB, as the real PVK). The gateway's body limit of
// SettInnbyggersPersonvernInnstilling fits it in base64.
const MaxEvidenceBytes = 4 << 20

func invalid(code, format string, args ...any) *apierr.Error {
	return apierr.WithCode(apierr.InvalidRequest, code, format, args...)
}

// checkFnr validates a national identity number with PVK codes; synthetic test persons pass with
// --accept-synthetic-fnr.
func (s *Server) checkFnr(n string) error {
	switch err := (fnr.Rules{Synthetic: s.cfg.AcceptSyntheticFnr}).Check(n); {
	case n == "":
		return invalid(codeFnrLength, "innbyggerFnr is required")
	case err == nil:
		return nil
	case errors.Is(err, fnr.ErrCheckDigit):
		return invalid(codeFnrCheckDigit, "%v", err)
	case errors.Is(err, fnr.ErrDate):
		return invalid(codeFnrDate, "%v", err)
	case errors.Is(err, fnr.ErrSynthetic):
		return invalid(codeFnrSynthetic, "%v", err)
	default:
		return invalid(codeFnrLength, "%v", err)
	}
}

func checkGUID(s string) error {
	if s == "" {
		return invalid(codeDefinitionGUID, "definisjonGuid is required")
	}
	if !guid.Valid(s) {
		return invalid(codeDefinitionGUID, "definisjonGuid must be a GUID")
	}
	return nil
}

func checkTypePi(s string) error {
	if s == "" {
		return invalid(codeTypePiUnknown, "typePi is required")
	}
	if !slices.Contains(TypesPi, s) {
		return invalid(codeTypePiUnknown, "typePi must be samtykke, reservasjon or tilgangsbegrensning")
	}
	return nil
}

// parseTidspunkt parses an RFC 3339 time.
func parseTidspunkt(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, invalid(codeTidspunkt, "tidspunkt is required")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, invalid(codeTidspunkt, "tidspunkt must be an RFC 3339 time, e.g. 2026-11-22T10:00:00Z")
	}
	return t, nil
}

// parseEvidence checks signed evidence: both or neither of type and content, an allowed type, base64
// content within MaxEvidenceBytes.
func parseEvidence(mime, content string) ([]byte, error) {
	switch {
	case mime == "" && content == "":
		return nil, nil
	case mime == "" || content == "":
		return nil, invalid(codeEvidencePair, "signertBevisMimeType and signertBevisInnhold go together")
	case !slices.Contains(EvidenceMimeTypes, mime):
		return nil, invalid(codeEvidenceMime, "signertBevisMimeType must be one of %s", strings.Join(EvidenceMimeTypes, ", "))
	case base64.StdEncoding.DecodedLen(len(content)) > MaxEvidenceBytes+3:
		return nil, invalid(codeEvidenceSize, "signertBevisInnhold is larger than %d MiB", MaxEvidenceBytes>>20)
	}
	b, err := base64.StdEncoding.DecodeString(content)
	if err != nil {
		return nil, invalid(codeEvidenceBase64, "signertBevisInnhold must be base64")
	}
	if len(b) > MaxEvidenceBytes {
		return nil, invalid(codeEvidenceSize, "signertBevisInnhold is larger than %d MiB", MaxEvidenceBytes>>20)
	}
	return b, nil
}

// checkText bounds a definition's text field.
func checkText(field, s string, required bool, max int) error {
	if (required && s == "") || utf8.RuneCountInString(s) > max || !utf8.ValidString(s) {
		return invalid(codeDefinitionField, "%s must be %s%d characters", field, map[bool]string{true: "1 to ", false: "at most "}[required], max)
	}
	if text.HasControl(s, false) {
		return invalid(codeDefinitionField, "%s must not contain control characters", field)
	}
	return nil
}
