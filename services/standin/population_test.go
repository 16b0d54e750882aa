package standin_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/fnr"
	"github.com/hnsec/hnsec/services/standin"
)

func TestSyntheticPid(t *testing.T) {
	for _, born := range []time.Time{
		time.Date(1948, 2, 29, 0, 0, 0, 0, time.UTC),
		time.Date(1985, 12, 31, 0, 0, 0, 0, time.UTC),
		time.Date(2019, 6, 1, 0, 0, 0, 0, time.UTC),
	} {
		for start := range 40 {
			pid, err := standin.SyntheticPid(born, start*25)
			require.NoError(t, err)
			require.NoError(t, fnr.Check(pid))
			require.Equal(t, born.Format("020106"), pid[:6])
		}
	}
	_, err := standin.SyntheticPid(time.Date(1850, 1, 1, 0, 0, 0, 0, time.UTC), 0)
	require.Error(t, err)
}

func TestDevPopulation(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	p, err := standin.SeedPopulation(dir, now)
	require.NoError(t, err)

	// Written once, read back the same.
	again, err := standin.LoadPopulation(filepath.Join(dir, standin.CitizensFile))
	require.NoError(t, err)
	require.Equal(t, p.Citizens, again.Citizens)

	var adults, under12, teen, over16 int
	for _, c := range p.Citizens {
		require.NoError(t, fnr.Check(c.Pid))
		parents, err := p.Parents(c.Pid)
		require.NoError(t, err)
		switch age := c.Age(now); {
		case len(parents) == 0:
			require.GreaterOrEqual(t, age, 18)
			adults++
		case age < 12:
			under12++
		case age < 16:
			teen++
		default:
			over16++
		}
		if len(parents) > 0 {
			require.Len(t, parents, 2, "each child has two parents")
		}
	}
	require.GreaterOrEqual(t, adults, 3)
	require.Equal(t, 1, under12)
	require.Equal(t, 1, teen)
	require.Equal(t, 1, over16)

	mother := p.Citizens[0]
	children, err := p.Children(mother.Pid)
	require.NoError(t, err)
	require.Len(t, children, 3)

	givere := p.FullmakterFrom(mother.Pid, now)
	require.Len(t, givere, 1)
	require.Equal(t, standin.FullmaktOrdinaer, givere[0].Type)
	require.NotEmpty(t, givere[0].FullmaktReferanseID)
	require.Len(t, p.FullmakterTo(givere[0].Fullmaktsgiver, now), 1)
	require.Empty(t, p.FullmakterFrom(mother.Pid, now.AddDate(0, -2, 0)), "not yet in force")

	_, err = p.Citizen("01010150155")
	require.ErrorIs(t, err, standin.ErrUnknownCitizen)
}

func TestPopulationRefusesBadData(t *testing.T) {
	good := standin.Citizen{Pid: "01010150155", GivenName: "A", FamilyName: "B", Birthdate: "1901-01-01"}
	tests := map[string][]standin.Citizen{
		"bad check digit": {{Pid: "01010150154", GivenName: "A", FamilyName: "B", Birthdate: "1901-01-01"}},
		"duplicate":       {good, good},
		"unknown child":   {{Pid: good.Pid, GivenName: "A", FamilyName: "B", Birthdate: "1901-01-01", Children: []string{"41010150068"}}},
		"no name":         {{Pid: good.Pid, Birthdate: "1901-01-01"}},
	}
	for name, citizens := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := standin.NewPopulation(citizens, nil)
			require.Error(t, err)
			require.NotContains(t, err.Error(), "0101015", "errors never name an fnr")
		})
	}
}
