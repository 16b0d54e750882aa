package flagx

import (
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStringList(t *testing.T) {
	var l StringList
	require.NoError(t, l.Set("a, b,,"))
	require.NoError(t, l.Set("c"))
	require.Equal(t, StringList{"a", "b", "c"}, l)
	require.Equal(t, "a,b,c", l.String())
}

func TestPrefixList(t *testing.T) {
	tests := []struct {
		name    string
		sets    []string
		want    string
		wantErr string
	}{
		{name: "one network", sets: []string{"10.0.0.0/8"}, want: "10.0.0.0/8"},
		{name: "repeated and comma-separated", sets: []string{"10.0.0.0/8, 192.0.2.0/24", "fd00::/8"}, want: "10.0.0.0/8,192.0.2.0/24,fd00::/8"},
		{name: "a bare address is itself", sets: []string{"127.0.0.1,::1"}, want: "127.0.0.1/32,::1/128"},
		{name: "host bits are masked", sets: []string{"192.0.2.77/24"}, want: "192.0.2.0/24"},
		{name: "IPv4-mapped forms become IPv4", sets: []string{"::ffff:192.0.2.1", "::ffff:10.0.0.0/104"}, want: "192.0.2.1/32,10.0.0.0/8"},
		{name: "empty parts are skipped", sets: []string{" , "}, want: ""},
		{name: "a name is refused", sets: []string{"proxy.example"}, wantErr: `"proxy.example" is not an address or a network in CIDR notation (like 10.0.0.0/8 or fd00::/8)`},
		{name: "a bad length is refused", sets: []string{"10.0.0.0/33"}, wantErr: `"10.0.0.0/33" is not an address or a network in CIDR notation (like 10.0.0.0/8 or fd00::/8)`},
		{name: "a zone is refused", sets: []string{"fe80::1%eth0"}, wantErr: `"fe80::1%eth0" is not an address or a network in CIDR notation (like 10.0.0.0/8 or fd00::/8)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l PrefixList
			var err error
			for _, s := range tt.sets {
				if err = l.Set(s); err != nil {
					break
				}
			}
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, l.String())
		})
	}
}

func TestPrefixListContains(t *testing.T) {
	var l PrefixList
	require.NoError(t, l.Set("10.0.0.0/8,2001:db8::/32"))
	for addr, want := range map[string]bool{
		"10.1.2.3":          true,
		"::ffff:10.1.2.3":   true,
		"11.0.0.1":          false,
		"2001:db8::1":       true,
		"2001:db9::1":       false,
		"::ffff:192.0.2.10": false,
	} {
		require.Equal(t, want, l.Contains(netip.MustParseAddr(addr)), addr)
	}
	require.False(t, PrefixList(nil).Contains(netip.MustParseAddr("10.0.0.1")))
}
