package pvk

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/apierr"
)

// register is a population register that knows the numbers in it.
type register map[string]bool

func (r register) Known(_ context.Context, fnr string) (bool, error) { return r[fnr], nil }

// An unknown citizen gets the real PVK's EPVK-101518; without a register every valid number is known.
func TestCheckCitizen(t *testing.T) {
	ctx := context.Background()
	s := &Server{}
	require.NoError(t, s.checkCitizen(ctx, "01010150155"), "until the register stand-in is wired in, everyone is known")

	s.KnowCitizensBy(register{"01010150155": true})
	require.NoError(t, s.checkCitizen(ctx, "01010150155"))
	var e *apierr.Error
	require.True(t, errors.As(s.checkCitizen(ctx, "13116900216"), &e))
	require.Equal(t, apierr.NotFound, e.Kind)
	require.Equal(t, "EPVK-101518", e.Code)
	require.Equal(t, "no citizen with this innbyggerFnr", e.Description)
}

// A definition belongs to one party: another party's partKode is EPVK-101500; none is not checked.
func TestCheckPartKode(t *testing.T) {
	def := Definition{GUID: "6f1c2d3e-0000-4000-8000-0000000000c1", PartKode: "norpreg"}
	require.NoError(t, checkPartKode(def, "norpreg"))
	require.NoError(t, checkPartKode(def, ""))
	var e *apierr.Error
	for _, other := range []string{"NORPREG", "demo"} {
		require.True(t, errors.As(checkPartKode(def, other), &e), other)
		require.Equal(t, apierr.InvalidRequest, e.Kind)
		require.Equal(t, "EPVK-101500", e.Code)
	}
}
