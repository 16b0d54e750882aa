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

		// The calendar date, with both check digits right, so only the date can refuse them.
		{"31 December", "31120100001", nil},
		{"30 April", "30040100004", nil},
		{"31 April", "31040100043", fnr.ErrDate},
		{"30 February", "30020100024", fnr.ErrDate},
		{"31 February", "31020100063", fnr.ErrDate},
		{"day 32", "32010100002", fnr.ErrDate},
		{"day 40 (neither a day nor a D-number)", "40010100005", fnr.ErrDate},
		{"month 0", "01000100060", fnr.ErrDate},
		// Leap years, with the century from the individual number.
		{"29 February 1904 (000–499: 1900s)", "29020400038", nil},
		{"29 February 1901", "29020100085", fnr.ErrDate},
		{"29 February 1900 (000–499: 1900s, no leap year)", "29020000064", fnr.ErrDate},
		{"29 February 2000 (500–999 with year 00–39: 2000s)", "29020050088", nil},
		{"29 February 2000 (900–999 with year 00–39)", "29020090039", nil},
		{"29 February 1856 (500–749 with year 54–99: 1800s)", "29025650024", nil},
		{"29 February 1996 (900–999 with year 40–99: 1900s)", "29029690098", nil},
		{"29 February 1997", "29029790009", fnr.ErrDate},
		{"unassigned individual number, leap year 52", "29025275053", nil},
		{"unassigned individual number, year 53", "29025375074", fnr.ErrDate},
		// D-numbers: the first digit is raised by 4, the date rules are the same.
		{"D-number 31 January", "71010100067", nil},
		{"D-number 31 February", "71020100057", fnr.ErrDate},
		{"D-number 29 February 2000", "69020050071", nil},
		{"D-number 29 February 1900", "69020000058", fnr.ErrDate},
		{"D-number day 32", "72010100187", fnr.ErrDate},
		// Synthetic test persons are refused, but only once their date and check digits are right.
		{"H-number", "01410100033", fnr.ErrSynthetic},
		{"Tenor synthetic number", "01810100016", fnr.ErrSynthetic},
		{"Tenor synthetic D-number (the broker's test person)", "54896001798", fnr.ErrSynthetic},
		{"Tenor synthetic number, wrong check digit", "01810100017", fnr.ErrCheckDigit},
		{"Tenor synthetic number, 31 April", "31048100069", fnr.ErrDate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, fnr.Check(tt.in))
		})
	}
}

// With Rules.Synthetic, H-numbers (month + 40) and Tenor's numbers (month + 80) are checked like real
// ones: the date after taking the offset off, both check digits, the D-number's day.
func TestCheckSynthetic(t *testing.T) {
	synthetic := fnr.Rules{Synthetic: true}
	tests := []struct {
		name, in string
		want     error
	}{
		{"the broker's test person (Tenor D-number, 14 September 1960)", "54896001798", nil},
		{"H-number 1 January", "01410100033", nil},
		{"H-number, other individual number", "01410100114", nil},
		{"Tenor 1 January", "01810100016", nil},
		{"Tenor D-number", "41018150083", nil},
		{"Tenor 31 September", "31098100019", fnr.ErrDate},
		{"Tenor 31 November", "31118100037", fnr.ErrDate},
		{"Tenor 31 April", "31048100069", fnr.ErrDate},
		{"Tenor 29 February 2000", "29028090054", nil},
		{"H-number 29 February 2000", "29024090041", nil},
		{"H-number 29 February 1900", "29024100098", fnr.ErrDate},
		{"month 99 (Tenor 19)", "29996000077", fnr.ErrDate},
		{"month 53 (H 13)", "01530100061", fnr.ErrDate},
		{"month 93 (Tenor 13)", "01930100044", fnr.ErrDate},
		{"wrong first check digit", "01810100026", fnr.ErrCheckDigit},
		{"wrong second check digit", "54896001797", fnr.ErrCheckDigit},
		{"ten digits", "5489600179", fnr.ErrLength},
		// Real numbers are accepted as before.
		{"fødselsnummer", "01010150155", nil},
		{"D-number", "41010150068", nil},
		{"month 13", "01130150155", fnr.ErrDate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, synthetic.Check(tt.in))
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
