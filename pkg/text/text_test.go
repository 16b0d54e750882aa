package text

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHasControl(t *testing.T) {
	for _, tc := range []struct {
		in                string
		single, multiline bool
	}{
		{"Beste Journal AS", false, false},
		{"Ærlig Øst-Åsen legekontor", false, false},
		{"line\nbreak", true, false},
		{"cr\r\nlf", true, false},
		{"tab\there", true, false},
		{"nul\x00", true, true},
		{"escape \x1b[31mred", true, true},
		{"del\x7f", true, true},
		{"c1 \u0085", true, true},
		{"bidi \u202egnp.exe", true, true},
		{"zero\u200bwidth", true, true},
		{"isolate \u2066x\u2069", true, true},
		{"bom \ufeff", true, true},
	} {
		require.Equal(t, tc.single, HasControl(tc.in, false), "%q", tc.in)
		require.Equal(t, tc.multiline, HasControl(tc.in, true), "%q multiline", tc.in)
	}
}
