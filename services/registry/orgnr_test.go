package registry

import "testing"

func TestCheckOrgnr(t *testing.T) {
	tests := []struct {
		in, wantErr string
	}{
		{"994598759", ""}, // Norsk helsenett SF
		{"971000007", ""},
		{"994598758", "organisation_number has a wrong check digit"},
		{"99459875", "organisation_number must be 9 digits"},
		{"9945987590", "organisation_number must be 9 digits"},
		{"99459875x", "organisation_number must be 9 digits"},
		{"", "organisation_number must be 9 digits"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			err := checkOrgnr(tt.in)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkOrgnr(%q) = %v, want nil", tt.in, err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("checkOrgnr(%q) = %v, want %q", tt.in, err, tt.wantErr)
			}
		})
	}
}
