package natsbus

import (
	"testing"
	"time"
)

func TestSyncFlag(t *testing.T) {
	tests := []struct {
		in      string
		want    Sync
		wantErr string
	}{
		{in: "always", want: 0},
		{in: "1s", want: Sync(time.Second)},
		{in: "250ms", want: Sync(250 * time.Millisecond)},
		{in: "0s", wantErr: `want always or a positive duration, got "0s"`},
		{in: "-1s", wantErr: `want always or a positive duration, got "-1s"`},
		{in: "sometimes", wantErr: `want always or a positive duration, got "sometimes"`},
	}
	for _, tc := range tests {
		var s Sync = 7
		err := s.Set(tc.in)
		if tc.wantErr != "" {
			if err == nil || err.Error() != tc.wantErr {
				t.Errorf("Set(%q) = %v, want %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || s != tc.want {
			t.Errorf("Set(%q) = %v, %v; want %v", tc.in, s, err, tc.want)
		}
		if tc.in != "1s" && tc.in != "always" {
			continue
		}
		if got := s.String(); got != tc.in {
			t.Errorf("String() = %q, want %q", got, tc.in)
		}
	}
}
