// Package fnr checks Norwegian national identity numbers (fødselsnummer, and D-numbers, whose first digit
// is raised by 4): 11 digits, the last two mod-11 check digits. An fnr is personal data: never log it,
// put it in a URL or a metric label.
package fnr

import "errors"

// Errors Check returns.
var (
	ErrLength     = errors.New("innbyggerFnr must be 11 digits")
	ErrCheckDigit = errors.New("innbyggerFnr has a wrong check digit")
	ErrDate       = errors.New("innbyggerFnr does not start with a valid date")
)

var (
	weights1 = [9]int{3, 7, 6, 1, 8, 9, 4, 5, 2}
	weights2 = [10]int{5, 4, 3, 2, 7, 6, 5, 4, 3, 2}
)

// Check validates s as a fødselsnummer or D-number.
func Check(s string) error {
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
	if day < 1 || day > 31 || month < 1 || month > 12 {
		return ErrDate
	}
	if checkDigit(d[:9], weights1[:]) != d[9] || checkDigit(d[:10], weights2[:]) != d[10] {
		return ErrCheckDigit
	}
	return nil
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
