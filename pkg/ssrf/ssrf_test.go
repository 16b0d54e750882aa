package ssrf_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/ssrf"
)

// fakeResolver answers from a table.
type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestCheckURL(t *testing.T) {
	res := fakeResolver{
		"public.example":   {netip.MustParseAddr("93.184.216.34")},
		"rebind.example":   {netip.MustParseAddr("93.184.216.34"), netip.MustParseAddr("10.0.0.5")},
		"internal.example": {netip.MustParseAddr("192.168.1.10")},
		"localhost":        {netip.MustParseAddr("127.0.0.1")},
	}
	p := ssrf.Policy{AllowHTTPHosts: []string{"receiver.test"}, Resolver: res}
	tests := []struct {
		url  string
		want error
	}{
		{"https://public.example/hook", nil},
		{"https://93.184.216.34:8443/hook", nil},
		{"http://public.example/hook", ssrf.ErrScheme},
		{"ftp://public.example/hook", ssrf.ErrScheme},
		{"https://user:pw@public.example/hook", ssrf.ErrURL},
		{"/relative", ssrf.ErrURL},
		{"https://nowhere.example/", ssrf.ErrURL},
		{"https://localhost/hook", ssrf.ErrAddress},
		{"https://127.0.0.1/hook", ssrf.ErrAddress},
		{"https://[::1]/hook", ssrf.ErrAddress},
		{"https://internal.example/hook", ssrf.ErrAddress},
		{"https://rebind.example/hook", ssrf.ErrAddress},
		{"https://169.254.169.254/latest/meta-data", ssrf.ErrAddress},
		{"https://[fe80::1]/", ssrf.ErrAddress},
		{"https://0.0.0.0/", ssrf.ErrAddress},
		{"https://100.64.0.1/", ssrf.ErrAddress},
		{"https://[::ffff:10.0.0.1]/", ssrf.ErrAddress},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := p.CheckURL(context.Background(), tt.url)
			if tt.want == nil {
				require.NoError(t, err)
				return
			}
			require.ErrorIs(t, err, tt.want)
		})
	}

	// An allowed network admits loopback (tests), and listed hosts may use http.
	cidrs, err := ssrf.ParseCIDRs([]string{"127.0.0.0/8"})
	require.NoError(t, err)
	p.AllowNetworks = cidrs
	p.AllowHTTPHosts = append(p.AllowHTTPHosts, "localhost")
	require.NoError(t, p.CheckURL(context.Background(), "http://localhost/hook"))
	require.ErrorIs(t, p.CheckURL(context.Background(), "https://internal.example/hook"), ssrf.ErrAddress)
	_, err = ssrf.ParseCIDRs([]string{"10.0.0.0/33"})
	require.Error(t, err)
}

// The dial-time check refuses a refused address even when the URL passed registration (DNS rebinding).
func TestControlRefusesAtDialTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	client := func(p ssrf.Policy) *http.Client {
		d := &net.Dialer{Control: p.Control}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	_, err := client(ssrf.Policy{}).Get(srv.URL)
	require.ErrorIs(t, err, ssrf.ErrAddress)

	cidrs, err := ssrf.ParseCIDRs([]string{"127.0.0.0/8"})
	require.NoError(t, err)
	resp, err := client(ssrf.Policy{AllowNetworks: cidrs}).Get(srv.URL)
	require.NoError(t, err)
	resp.Body.Close()
}

func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{"https://a.example/", "http://[::1]:80/x", "https://10.0.0.1/", "://", "https://%zz/"} {
		f.Add(s)
	}
	p := ssrf.Policy{Resolver: fakeResolver{}}
	f.Fuzz(func(t *testing.T, raw string) {
		_ = p.CheckURL(context.Background(), raw)
	})
}
