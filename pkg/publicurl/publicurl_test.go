package publicurl

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestBase(t *testing.T) {
	tests := []struct {
		name, issuer, publicURL, want string
	}{
		{"--public-url wins", "https://sts.example", "https://gw.example/", "https://gw.example"},
		{"a URL issuer", "https://sts.example/", "", "https://sts.example"},
		{"an http issuer", "http://127.0.0.1:8080", "", "http://127.0.0.1:8080"},
		{"a bare issuer is https", "sikkerhet.helsenorge.no", "", "https://sikkerhet.helsenorge.no"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, Base(tt.issuer, tt.publicURL))
		})
	}
}

func TestListen(t *testing.T) {
	tests := []struct {
		addr string
		tls  bool
		want string
	}{
		{"127.0.0.1:8080", false, "http://127.0.0.1:8080"},
		{"127.0.0.1:8443", true, "https://127.0.0.1:8443"},
		{"[::1]:8080", false, "http://[::1]:8080"},
		{"0.0.0.0:8080", false, "http://localhost:8080"},
		{"[::]:8443", true, "https://localhost:8443"},
		{":8080", false, "http://localhost:8080"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			require.Equal(t, tt.want, Listen(tt.addr, tt.tls))
		})
	}
}

func TestCheck(t *testing.T) {
	const notURL = "--public-url must be an absolute http or https URL, like https://sikkerhet.helsenorge.no"
	const extras = "--public-url must not have user information, a query or a fragment"
	tests := []struct {
		url, wantErr string
	}{
		{"https://sikkerhet.helsenorge.no", ""},
		{"https://gw.example:8443/hnsec/", ""},
		{"http://127.0.0.1:8080", ""},
		{"sikkerhet.helsenorge.no", notURL},
		{"ftp://gw.example", notURL},
		{"https://", notURL},
		{"https:gw.example", notURL},
		{"https://user:pw@gw.example", extras},
		{"https://gw.example/?a=b", extras},
		{"https://gw.example/?", extras},
		{"https://gw.example/#x", extras},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := Check(tt.url)
			if tt.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.EqualError(t, err, tt.wantErr)
		})
	}
}
