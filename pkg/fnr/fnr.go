// Package fnr checks Norwegian national identity numbers (fødselsnummer, and D-numbers, whose first digit
// is raised by 4): 11 digits, the first six a real calendar date (DDMMYY), the century taken from the
// individual number (digits 7 to 9) as the population register assigns it, the last two mod-11 check
// digits. Synthetic test persons, H-numbers (month raised by 40) and Tenor's test numbers (month raised
// by 80), are refused by Check with ErrSynthetic and accepted by Rules{Synthetic: true}.Check. An fnr is
// personal data: never log it, put it in a URL or a metric label.
package fnr

import (
	"errors"
	"time"
)

// Errors Check returns.
var (
	ErrLength     = errors.New("innbyggerFnr must be 11 digits")
	ErrCheckDigit = errors.New("innbyggerFnr has a wrong check digit")
	ErrDate       = errors.New("innbyggerFnr does not start with a valid date")
	// ErrSynthetic is a well-formed synthetic test number (H-number or Tenor's) where only real numbers
	// are accepted.
	ErrSynthetic = errors.New("innbyggerFnr is a synthetic test number (H-number or Tenor), not accepted here")
)

// Rules say which numbers beyond fødselsnummer and D-numbers Check accepts.
type Rules struct {
	// Synthetic accepts synthetic test persons: H-numbers (month raised by 40) and Tenor's test numbers
	// (month raised by 80), also with a D-number's day.
	Synthetic bool
}

// Month offsets of synthetic test persons.
const (
	hNumberMonth = 40
	tenorMonth   = 80
)

var (
	weights1 = [9]int{3, 7, 6, 1, 8, 9, 4, 5, 2}
	weights2 = [10]int{5, 4, 3, 2, 7, 6, 5, 4, 3, 2}
)

// Check validates s as a fødselsnummer or D-number; a synthetic test number is ErrSynthetic.
func Check(s string) error { return Rules{}.Check(s) }

// Check validates s as a fødselsnummer or D-number, or a synthetic test number when r.Synthetic. A
// synthetic number r refuses is ErrSynthetic, and only when its date and check digits are right.
func (r Rules) Check(s string) error {
	if len(s) != 11 {
		return ErrLength
	}
	var d [11]int
	for i := range 11 {
		if s[i] < '0' || s[i] > '9' {
			return ErrLength
		}
		d[i] = int(s[i] - '0')
	}
	day := d[0]*10 + d[1]
	if day > 40 { // D-number
		day -= 40
	}
	month := d[2]*10 + d[3]
	synthetic := false
	switch {
	case month > tenorMonth:
		month, synthetic = month-tenorMonth, true
	case month > hNumberMonth:
		month, synthetic = month-hNumberMonth, true
	}
	year := birthYear(d[4]*10+d[5], d[6]*100+d[7]*10+d[8])
	if month < 1 || month > 12 || day < 1 || day > daysIn(year, time.Month(month)) {
		return ErrDate
	}
	if checkDigit(d[:9], weights1[:]) != d[9] || checkDigit(d[:10], weights2[:]) != d[10] {
		return ErrCheckDigit
	}
	if synthetic && !r.Synthetic {
		return ErrSynthetic
	}
	return nil
}

// birthYear is the four-digit year of a two-digit year yy and an individual number, by the register's
// allocation: 000–499 were born 1900–1999, 500–749 with yy 54–99 1854–1899, 500–999 with yy 00–39
// 2000–2039, 900–999 with yy 40–99 1940–1999. The combinations left over (500–749 with yy 40–53,
// 750–899 with yy 40–99) are unassigned but not refused here: the century only decides whether
// 29 February exists in year 00, and yy 00 is always assigned, so they are read as 1900 + yy.
func birthYear(yy, individual int) int {
	switch {
	case individual < 500:
		return 1900 + yy
	case yy <= 39:
		return 2000 + yy
	case individual < 750 && yy >= 54:
		return 1800 + yy
	default:
		return 1900 + yy
	}
}

// daysIn is the number of days of a month of the Gregorian calendar.
func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

// checkDigit is the mod-11 check digit of digits under weights; -1 when none exists (remainder 1).
func checkDigit(digits, weights []int) int {
	sum := 0
	for i, w := range weights {
		sum += digits[i] * w
	}
	c := 11 - sum%11
	switch c {
	case 11:
		return 0
	case 10:
		return -1
	}
	return c
}
