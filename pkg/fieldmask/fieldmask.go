// Package fieldmask checks the update masks of partial updates.
package fieldmask

import (
	"fmt"
	"slices"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

// Paths returns the paths of an update mask after checking that it names at least one field and that each
// is one of allowed.
func Paths(mask *fieldmaskpb.FieldMask, allowed ...string) ([]string, error) {
	if len(mask.GetPaths()) == 0 {
		return nil, fmt.Errorf("update_mask names no field")
	}
	for _, p := range mask.GetPaths() {
		if !slices.Contains(allowed, p) {
			return nil, fmt.Errorf("update_mask: field %q cannot be updated", p)
		}
	}
	return mask.GetPaths(), nil
}
