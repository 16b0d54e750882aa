package registry

import "fmt"

// checkOrgnr validates a Norwegian organisation number: 9 digits, the last a mod-11 check digit over the
// first eight with weights 3 2 7 6 5 4 3 2 (a remainder giving check digit 10 makes the number invalid).
func checkOrgnr(s string) error {
	if len(s) != 9 {
		return fmt.Errorf("organisation_number must be 9 digits")
	}
	weights := [8]int{3, 2, 7, 6, 5, 4, 3, 2}
	sum := 0
	for i := 0; i < 9; i++ {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("organisation_number must be 9 digits")
		}
		if i < 8 {
			sum += int(s[i]-'0') * weights[i]
		}
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	if check == 10 || check != int(s[8]-'0') {
		return fmt.Errorf("organisation_number has a wrong check digit")
	}
	return nil
}
