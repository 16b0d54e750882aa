package standin

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/hnsec/hnsec/pkg/fnr"
)

// CitizensFile is the name of the test-citizen file in the data directory.
const CitizensFile = "dev-citizens.json"

// Citizen is one synthetic person in the population-register stand-in.
type Citizen struct {
	// Pid is the fødselsnummer: a valid mod-11 number, synthetic.
	Pid        string `json:"pid"`
	GivenName  string `json:"givenName"`
	MiddleName string `json:"middleName,omitempty"`
	FamilyName string `json:"familyName"`
	// Birthdate is YYYY-MM-DD.
	Birthdate string `json:"birthdate"`
	// Children are the pids of the citizen's children (the register's parent–child relation).
	Children []string `json:"children,omitempty"`
}

// Name is the citizen's full name.
func (c Citizen) Name() string {
	if c.MiddleName != "" {
		return c.GivenName + " " + c.MiddleName + " " + c.FamilyName
	}
	return c.GivenName + " " + c.FamilyName
}

// Age is the citizen's age in whole years at t.
func (c Citizen) Age(t time.Time) int {
	b, err := time.Parse(time.DateOnly, c.Birthdate)
	if err != nil {
		return 0
	}
	age := t.Year() - b.Year()
	if t.Month() < b.Month() || t.Month() == b.Month() && t.Day() < b.Day() {
		age--
	}
	return age
}

// Fullmakt is a power of attorney: the fullmaktsgiver lets the fullmaktshaver act for them.
type Fullmakt struct {
	Fullmaktsgiver      string `json:"fullmaktsgiver"`
	Fullmaktshaver      string `json:"fullmaktshaver"`
	FullmaktReferanseID string `json:"fullmaktReferanseId"`
	// Type is ordinaer, bekreftet or uten_samtykkekompetanse_over12 (OIDC.md section 1).
	Type      string     `json:"type"`
	GyldigFra time.Time  `json:"gyldigFra"`
	GyldigTil *time.Time `json:"gyldigTil,omitempty"`
}

// Fullmakt types.
const (
	FullmaktOrdinaer                     = "ordinaer"
	FullmaktBekreftet                    = "bekreftet"
	FullmaktUtenSamtykkekompetanseOver12 = "uten_samtykkekompetanse_over12"
)

// Valid reports whether the fullmakt is in force at t.
func (f Fullmakt) Valid(t time.Time) bool {
	return !t.Before(f.GyldigFra) && (f.GyldigTil == nil || t.Before(*f.GyldigTil))
}

// Population is the population-register stand-in: test citizens, who is whose child, and fullmakter. It
// is read-only after Load; the OP asks it who a logged-in citizen may represent.
type Population struct {
	Citizens   []Citizen  `json:"citizens"`
	Fullmakter []Fullmakt `json:"fullmakter"`

	byPid map[string]int
}

// ErrUnknownCitizen is returned for a pid the register does not hold.
var ErrUnknownCitizen = errors.New("no such test citizen")

// LoadPopulation reads and checks a test-citizen file.
func LoadPopulation(path string) (*Population, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var p Population
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := p.index(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &p, nil
}

// NewPopulation checks and indexes citizens and fullmakter.
func NewPopulation(citizens []Citizen, fullmakter []Fullmakt) (*Population, error) {
	p := &Population{Citizens: citizens, Fullmakter: fullmakter}
	return p, p.index()
}

// index checks every pid (valid mod-11, unique, relations to known citizens) and builds the lookup. Errors
// name positions, never a pid.
func (p *Population) index() error {
	p.byPid = make(map[string]int, len(p.Citizens))
	for i, c := range p.Citizens {
		if err := fnr.Check(c.Pid); err != nil {
			return fmt.Errorf("citizens[%d].pid: %w", i, err)
		}
		if _, err := time.Parse(time.DateOnly, c.Birthdate); err != nil {
			return fmt.Errorf("citizens[%d].birthdate must be YYYY-MM-DD", i)
		}
		if c.GivenName == "" || c.FamilyName == "" {
			return fmt.Errorf("citizens[%d]: givenName and familyName are required", i)
		}
		if _, dup := p.byPid[c.Pid]; dup {
			return fmt.Errorf("citizens[%d].pid: listed twice", i)
		}
		p.byPid[c.Pid] = i
	}
	for i, c := range p.Citizens {
		for j, child := range c.Children {
			if _, ok := p.byPid[child]; !ok || child == c.Pid {
				return fmt.Errorf("citizens[%d].children[%d]: not another citizen in the file", i, j)
			}
		}
	}
	for i, f := range p.Fullmakter {
		_, giver := p.byPid[f.Fullmaktsgiver]
		_, haver := p.byPid[f.Fullmaktshaver]
		switch {
		case !giver || !haver || f.Fullmaktsgiver == f.Fullmaktshaver:
			return fmt.Errorf("fullmakter[%d]: fullmaktsgiver and fullmaktshaver must be two citizens in the file", i)
		case f.FullmaktReferanseID == "":
			return fmt.Errorf("fullmakter[%d]: fullmaktReferanseId is required", i)
		case f.Type != FullmaktOrdinaer && f.Type != FullmaktBekreftet && f.Type != FullmaktUtenSamtykkekompetanseOver12:
			return fmt.Errorf("fullmakter[%d].type must be %s, %s or %s", i, FullmaktOrdinaer, FullmaktBekreftet, FullmaktUtenSamtykkekompetanseOver12)
		}
	}
	return nil
}

// Citizen returns the citizen with pid.
func (p *Population) Citizen(pid string) (Citizen, error) {
	i, ok := p.byPid[pid]
	if !ok {
		return Citizen{}, ErrUnknownCitizen
	}
	return p.Citizens[i], nil
}

// Children returns the children of the citizen with pid, in file order.
func (p *Population) Children(pid string) ([]Citizen, error) {
	parent, err := p.Citizen(pid)
	if err != nil {
		return nil, err
	}
	out := make([]Citizen, 0, len(parent.Children))
	for _, c := range parent.Children {
		out = append(out, p.Citizens[p.byPid[c]])
	}
	return out, nil
}

// Parents returns the parents of the citizen with pid, in file order.
func (p *Population) Parents(pid string) ([]Citizen, error) {
	if _, err := p.Citizen(pid); err != nil {
		return nil, err
	}
	var out []Citizen
	for _, c := range p.Citizens {
		if slices.Contains(c.Children, pid) {
			out = append(out, c)
		}
	}
	return out, nil
}

// FullmakterFrom returns the fullmakter in force at t where the citizen with pid is the fullmaktshaver:
// the people they may act for (their fullmaktsgivere).
func (p *Population) FullmakterFrom(pid string, t time.Time) []Fullmakt {
	return p.fullmakter(t, func(f Fullmakt) bool { return f.Fullmaktshaver == pid })
}

// FullmakterTo returns the fullmakter in force at t where the citizen with pid is the fullmaktsgiver.
func (p *Population) FullmakterTo(pid string, t time.Time) []Fullmakt {
	return p.fullmakter(t, func(f Fullmakt) bool { return f.Fullmaktsgiver == pid })
}

// fullmakter returns the fullmakter in force at t that match.
func (p *Population) fullmakter(t time.Time, match func(Fullmakt) bool) []Fullmakt {
	var out []Fullmakt
	for _, f := range p.Fullmakter {
		if match(f) && f.Valid(t) {
			out = append(out, f)
		}
	}
	return out
}

// Save writes the population to path (mode 0600: the file is personal-data shaped even if synthetic).
func (p *Population) Save(path string) error {
	b, err := json.MarshalIndent(struct {
		Citizens   []Citizen  `json:"citizens"`
		Fullmakter []Fullmakt `json:"fullmakter"`
	}{p.Citizens, p.Fullmakter}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o600)
}
