package gateway

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// The set operation's body fits 4 MiB of evidence in base64 in either path layout and any case; PVK's
// other paths and everything else keep their limits.
func TestBodyLimit(t *testing.T) {
	for _, tc := range []struct {
		path string
		want int64
	}{
		{"/personvern/Personverninnstillinger/SettInnbyggersPersonvernInnstilling/v2", MaxEvidenceBodyBytes},
		{"/personvern/Personverninnstillinger/v2/SettInnbyggersPersonvernInnstilling", MaxEvidenceBodyBytes},
		{"/personvern/personverninnstillinger/settinnbyggerspersonverninnstilling/v2", MaxEvidenceBodyBytes},
		{"/personvern/Personverninnstillinger/SjekkInnbyggersPiStatus/v2", MaxPVKBodyBytes},
		{"/personvern/Personverninnstillinger/v2/HentInnbyggereAktivePiForDefinisjon", MaxPVKBodyBytes},
		{"/pvk/v1/subscriptions", MaxPVKBodyBytes},
		{"/sts/Token", MaxBodyBytes},
		{"/registry/v1/SettInnbyggersPersonvernInnstilling", MaxBodyBytes},
	} {
		require.Equal(t, tc.want, bodyLimit(tc.path), tc.path)
	}
	require.Greater(t, int64(MaxEvidenceBodyBytes), int64((4<<20+2)/3*4*69/64), "base64 of 4 MiB, with each + (1 in 64) escaped as \\u002B")
	require.Equal(t, "7 MiB", sizeText(MaxEvidenceBodyBytes))
	require.Equal(t, "512 KiB", sizeText(MaxPVKBodyBytes))
}
