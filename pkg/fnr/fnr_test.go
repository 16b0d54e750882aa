package fnr_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/fnr"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		name, in string
		want     error
	}{
		// Synthetic numbers from the public test-data range, computed with both check digits.
		{"fødselsnummer", "01010150155", nil},
		{"D-number", "41010150068", nil},
		{"wrong first check digit", "01010150165", fnr.ErrCheckDigit},
		{"wrong second check digit", "01010150154", fnr.ErrCheckDigit},
		{"ten digits", "0101015011", fnr.ErrLength},
		{"letters", "0101015011x", fnr.ErrLength},
		{"month 13", "01130150155", fnr.ErrDate},
		{"day 0", "00010150155", fnr.ErrDate},
		{"empty", "", fnr.ErrLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, fnr.Check(tt.in))
		})
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{"01010150155", "41010150068", "0", "ØØØØØØØØØØØ", "99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if fnr.Check(s) == nil {
			require.Len(t, s, 11)
		}
	})
}
