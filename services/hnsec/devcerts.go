package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/peterbourgon/ff/v3/ffcli"
)

// Files `hnsec dev certs` writes.
const (
	devCAFile      = "ca.pem"
	devCAKeyFile   = "ca-key.pem"
	devCertFile    = "node.pem"
	devCertKeyFile = "node-key.pem"
)

// devCommand groups developer tools.
func devCommand(out io.Writer) *ffcli.Command {
	subs := []*ffcli.Command{devCertsCommand(out), devClusterCommand(out), devNATSNodeCommand()}
	return &ffcli.Command{
		Name: "dev", ShortUsage: "hnsec dev <certs|cluster|nats-node> [flags]", ShortHelp: "developer tools",
		FlagSet:     flag.NewFlagSet("hnsec dev", flag.ContinueOnError),
		Subcommands: subs,
		Exec:        groupExec(subs),
	}
}

// devCertsCommand writes a development CA and one certificate, for servers and clients alike, that every
// process of a local cluster uses for mutual TLS between services.
func devCertsCommand(out io.Writer) *ffcli.Command {
	fs := flag.NewFlagSet("hnsec dev certs", flag.ContinueOnError)
	dir := fs.String("out", "./certs", "directory to write ca.pem, ca-key.pem, node.pem and node-key.pem to")
	hosts := fs.String("hosts", "127.0.0.1,localhost", "comma-separated names and addresses the certificate is for")
	return &ffcli.Command{
		Name: "certs", ShortUsage: "hnsec dev certs [--out DIR] [--hosts H,H]", FlagSet: fs,
		ShortHelp: "write a development CA and a node certificate for mutual TLS between services (not for production)",
		Exec: func(context.Context, []string) error {
			if err := writeDevCerts(*dir, strings.Split(*hosts, ","), time.Now()); err != nil {
				return err
			}
			_, err := fmt.Fprintf(out, "wrote %s: use --grpc-tls-cert %s --grpc-tls-key %s --grpc-tls-ca %s\n", *dir,
				filepath.Join(*dir, devCertFile), filepath.Join(*dir, devCertKeyFile), filepath.Join(*dir, devCAFile))
			return err
		},
	}
}

func writeDevCerts(dir string, hosts []string, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	caTmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "hnsec development CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: serial(), Subject: pkix.Name{CommonName: "hnsec node"}, NotBefore: now.Add(-time.Hour),
		NotAfter: now.AddDate(1, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h == "" {
			continue
		} else if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if len(tmpl.IPAddresses)+len(tmpl.DNSNames) == 0 {
		return errors.New("--hosts: name at least one host")
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name, kind string
		der        []byte
		key        *ecdsa.PrivateKey
	}{{devCAFile, "CERTIFICATE", caDER, nil}, {devCAKeyFile, "", nil, caKey}, {devCertFile, "CERTIFICATE", der, nil}, {devCertKeyFile, "", nil, key}} {
		block := &pem.Block{Type: f.kind, Bytes: f.der}
		if f.key != nil {
			b, err := x509.MarshalECPrivateKey(f.key)
			if err != nil {
				return err
			}
			block = &pem.Block{Type: "EC PRIVATE KEY", Bytes: b}
		}
		if err := os.WriteFile(filepath.Join(dir, f.name), pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// serial is a random 128-bit certificate serial number.
func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	return n
}
