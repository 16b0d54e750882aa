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
		{"https://[64:ff9b::10.0.0.1]/", ssrf.ErrAddress},
		{"https://[2002:a00:1::1]/", ssrf.ErrAddress},
		{"https://[::10.0.0.1]/", ssrf.ErrAddress},
		{"https://198.18.0.1/", ssrf.ErrAddress},
		{"https://[2001:db8::1]/", ssrf.ErrAddress},
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

// Reserved ranges, and IPv6 addresses that carry a refused IPv4 address, are refused; public ones pass.
func TestCheckAddrReservedAndEmbedded(t *testing.T) {
	tests := []struct {
		addr    string
		refused bool
	}{
		{"93.184.216.34", false},
		{"2606:2800:220:1:248:1893:25c8:1946", false},
		// Special-purpose IPv4 ranges.
		{"192.0.0.8", true},      // IETF protocol assignments 192.0.0.0/24
		{"192.0.2.10", true},     // TEST-NET-1
		{"198.51.100.7", true},   // TEST-NET-2
		{"203.0.113.200", true},  // TEST-NET-3
		{"198.18.0.1", true},     // benchmarking 198.18.0.0/15
		{"198.19.255.254", true}, // its upper half
		{"198.20.0.1", false},    // just past it
		{"192.0.3.1", false},     // just past TEST-NET-1
		{"255.255.255.255", true},
		// Special-purpose IPv6 ranges.
		{"2001:db8::1", true},      // documentation
		{"3fff::1", true},          // documentation (RFC 9637)
		{"100::1", true},           // discard-only
		{"64:ff9b:1::a00:1", true}, // local-use NAT64, refused whole
		// IPv4-mapped and IPv4-compatible.
		{"::ffff:127.0.0.1", true},
		{"::ffff:93.184.216.34", false},
		{"::127.0.0.1", true},
		{"::10.0.0.1", true},
		{"::169.254.169.254", true},
		{"::192.0.2.1", true},
		{"::ffff:0:10.0.0.1", true}, // IPv4-translated (SIIT)
		// NAT64, the well-known prefix.
		{"64:ff9b::127.0.0.1", true},
		{"64:ff9b::a00:1", true},      // 10.0.0.1
		{"64:ff9b::a9fe:a9fe", true},  // 169.254.169.254
		{"64:ff9b::c612:1", true},     // 198.18.0.1
		{"64:ff9b::5db8:d822", false}, // 93.184.216.34
		// 6to4.
		{"2002:7f00:1::1", true},     // 127.0.0.1
		{"2002:c0a8:101::1", true},   // 192.168.1.1
		{"2002:cb00:7101::1", true},  // 203.0.113.1
		{"2002:5db8:d822::1", false}, // 93.184.216.34
		// Teredo: the server, or the client (stored inverted).
		{"2001:0:5db8:d822::80ff:fffe", true},  // client 127.0.0.1
		{"2001:0:a00:1::a2ff:2bdd", true},      // server 10.0.0.1
		{"2001:0:5db8:d822::a247:27dd", false}, // server and client 93.184.216.34
	}
	p := ssrf.Policy{}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := p.CheckAddr(netip.MustParseAddr(tt.addr))
			if tt.refused {
				require.ErrorIs(t, err, ssrf.ErrAddress)
				return
			}
			require.NoError(t, err)
		})
	}

	// An allowed network admits what it names, in whatever IPv6 form carries it, and nothing else.
	cidrs, err := ssrf.ParseCIDRs([]string{"127.0.0.0/8"})
	require.NoError(t, err)
	p.AllowNetworks = cidrs
	require.NoError(t, p.CheckAddr(netip.MustParseAddr("64:ff9b::127.0.0.1")))
	require.ErrorIs(t, p.CheckAddr(netip.MustParseAddr("64:ff9b::10.0.0.1")), ssrf.ErrAddress)
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
