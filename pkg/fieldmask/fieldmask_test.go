package fieldmask

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"
)

func TestPaths(t *testing.T) {
	tests := []struct {
		name    string
		mask    *fieldmaskpb.FieldMask
		want    []string
		wantErr string
	}{
		{name: "allowed", mask: &fieldmaskpb.FieldMask{Paths: []string{"name", "description"}}, want: []string{"name", "description"}},
		{name: "nil", mask: nil, wantErr: "update_mask names no field"},
		{name: "empty", mask: &fieldmaskpb.FieldMask{}, wantErr: "update_mask names no field"},
		{name: "other field", mask: &fieldmaskpb.FieldMask{Paths: []string{"name", "owner"}}, wantErr: `update_mask: field "owner" cannot be updated`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Paths(tc.mask, "name", "description")
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("Paths = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
