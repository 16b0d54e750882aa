package standin

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/hnsec/hnsec/pkg/fnr"
	"github.com/hnsec/hnsec/pkg/guid"
)

// SyntheticPid returns a valid fødselsnummer for birthdate: the first individual number from start (in
// the range the register assigns to the birth year's century) whose two mod-11 check digits exist. It is
// synthetic: no register lookup, so it may collide with a real person's number; use it for test data only.
func SyntheticPid(birthdate time.Time, start int) (string, error) {
	lo, hi := 0, 499
	if y := birthdate.Year(); y >= 2000 && y <= 2039 {
		lo, hi = 500, 999
	} else if y < 1900 || y > 1999 {
		return "", fmt.Errorf("no synthetic fødselsnummer for birth year %d", y)
	}
	date := birthdate.Format("020106")
	for i := range hi - lo + 1 {
		ind := lo + (start+i)%(hi-lo+1)
		var d [11]int
		s := fmt.Sprintf("%s%03d", date, ind)
		for k := range 9 {
			d[k] = int(s[k] - '0')
		}
		d[9] = mod11(d[:9], []int{3, 7, 6, 1, 8, 9, 4, 5, 2})
		if d[9] < 0 {
			continue
		}
		d[10] = mod11(d[:10], []int{5, 4, 3, 2, 7, 6, 5, 4, 3, 2})
		if d[10] < 0 {
			continue
		}
		pid := fmt.Sprintf("%s%d%d", s, d[9], d[10])
		if fnr.Check(pid) == nil {
			return pid, nil
		}
	}
	return "", errors.New("no individual number gives valid check digits")
}

// mod11 is the mod-11 check digit of digits under weights, or -1 when none exists.
func mod11(digits, weights []int) int {
	sum := 0
	for i, w := range weights {
		sum += digits[i] * w
	}
	switch c := 11 - sum%11; c {
	case 11:
		return 0
	case 10:
		return -1
	default:
		return c
	}
}

// DevPopulation builds the dev seed as of now: the Nordmann family (two parents, children aged 7, 14 and
// 17), a grandfather who has given the mother an ordinary fullmakt, and a single adult without relations.
// Ages are relative to now, so a fresh seed always has a child under 12, one 12–16 and one over 16.
func DevPopulation(now time.Time) (*Population, error) {
	type person struct {
		given, middle, family string
		age, start            int
	}
	people := []person{
		{"Kari", "", "Nordmann", 41, 101},  // 0 mother
		{"Ola", "", "Nordmann", 43, 202},   // 1 father
		{"Emma", "", "Nordmann", 7, 503},   // 2 child under 12
		{"Jonas", "", "Nordmann", 14, 604}, // 3 child 12–16
		{"Sofie", "", "Nordmann", 17, 705}, // 4 child over 16
		{"Per", "Olav", "Hansen", 78, 306}, // 5 grandfather, fullmaktsgiver
		{"Ingrid", "", "Berg", 29, 407},    // 6 no relations
	}
	citizens := make([]Citizen, len(people))
	for i, p := range people {
		// A month before the birthday, so the age holds for a while after seeding.
		born := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC).AddDate(-p.age, 0, -30)
		pid, err := SyntheticPid(born, p.start)
		if err != nil {
			return nil, err
		}
		citizens[i] = Citizen{Pid: pid, GivenName: p.given, MiddleName: p.middle, FamilyName: p.family, Birthdate: born.Format(time.DateOnly)}
	}
	children := []string{citizens[2].Pid, citizens[3].Pid, citizens[4].Pid}
	citizens[0].Children = children
	citizens[1].Children = children
	fullmakter := []Fullmakt{{
		Fullmaktsgiver: citizens[5].Pid, Fullmaktshaver: citizens[0].Pid, FullmaktReferanseID: guid.New(),
		Type: FullmaktOrdinaer, GyldigFra: now.UTC().Truncate(time.Second).AddDate(0, -1, 0),
	}}
	return NewPopulation(citizens, fullmakter)
}

// SeedPopulation loads <dataDir>/dev-citizens.json, writing the dev seed there first when it does not
// exist.
func SeedPopulation(dataDir string, now time.Time) (*Population, error) {
	path := filepath.Join(dataDir, CitizensFile)
	p, err := LoadPopulation(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return p, err
	}
	if p, err = DevPopulation(now); err != nil {
		return nil, err
	}
	if err := p.Save(path); err != nil {
		return nil, err
	}
	return p, nil
}
