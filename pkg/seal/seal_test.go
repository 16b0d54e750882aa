package seal_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/pkg/seal"
)

func TestSealOpen(t *testing.T) {
	kek := bytes.Repeat([]byte{7}, seal.KEKSize)
	s, err := seal.New(kek)
	require.NoError(t, err)
	sealed := s.Seal([]byte("key material"), []byte("kid-1"))
	require.NotContains(t, string(sealed), "key material")

	plain, err := s.Open(sealed, []byte("kid-1"))
	require.NoError(t, err)
	require.Equal(t, "key material", string(plain))

	other, err := seal.New(bytes.Repeat([]byte{8}, seal.KEKSize))
	require.NoError(t, err)
	tampered := append([]byte{}, sealed...)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"other kek":   func() ([]byte, error) { return other.Open(sealed, []byte("kid-1")) },
		"other aad":   func() ([]byte, error) { return s.Open(sealed, []byte("kid-2")) },
		"tampered":    func() ([]byte, error) { return s.Open(tampered, []byte("kid-1")) },
		"truncated":   func() ([]byte, error) { return s.Open(sealed[:5], []byte("kid-1")) },
		"bad version": func() ([]byte, error) { return s.Open(append([]byte{9}, sealed[1:]...), []byte("kid-1")) },
	} {
		_, err := open()
		require.ErrorIs(t, err, seal.ErrOpen, name)
	}
	_, err = seal.New([]byte("short"))
	require.EqualError(t, err, "the key-encryption key must be 32 bytes, not 5")
}

func TestLoadKEK(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "kek")
	_, err := seal.LoadKEK("", "", false)
	require.EqualError(t, err, "a key-encryption key is required: --kek-file or HNSEC_KEK (dev mode generates one)")
	_, err = seal.LoadKEK("", file, false)
	require.ErrorIs(t, err, os.ErrNotExist)

	generated, err := seal.LoadKEK("", file, true)
	require.NoError(t, err)
	st, err := os.Stat(file)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	again, err := seal.LoadKEK("", file, true)
	require.NoError(t, err)
	require.Equal(t, generated, again, "an existing file is kept")

	env := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	fromEnv, err := seal.LoadKEK(env, file, false)
	require.NoError(t, err)
	require.Equal(t, bytes.Repeat([]byte{1}, 32), fromEnv, "HNSEC_KEK wins over the file")
	_, err = seal.LoadKEK("not base64!", "", false)
	require.EqualError(t, err, "the key-encryption key must be base64")
	_, err = seal.LoadKEK(base64.StdEncoding.EncodeToString([]byte("short")), "", false)
	require.EqualError(t, err, "the key-encryption key must be 32 bytes, not 5")
}
