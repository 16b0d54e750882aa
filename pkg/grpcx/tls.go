package grpcx

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// TLS secures gRPC between services with mutual TLS: every process has a certificate signed by one
// internal CA. The server asks for, but does not require, a client certificate: a caller that presents one
// the CA signed is another service (internal), any other caller is a public client over plain TLS.
type TLS struct {
	cert tls.Certificate
	ca   *x509.CertPool
}

// LoadTLS reads the process's certificate and key and the internal CA (PEM files).
func LoadTLS(certFile, keyFile, caFile string) (*TLS, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("gRPC TLS certificate: %w", err)
	}
	ca, err := loadCA(caFile)
	if err != nil {
		return nil, fmt.Errorf("gRPC %w", err)
	}
	return &TLS{cert: cert, ca: ca}, nil
}

// loadCA reads a PEM file of CA certificates.
func loadCA(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	ca := x509.NewCertPool()
	if !ca.AppendCertsFromPEM(pem) {
		return nil, errors.New("TLS CA: no certificate in " + file)
	}
	return ca, nil
}

// ServerOption makes a server speak TLS and verify the client certificates it is given.
func (t *TLS) ServerOption() grpc.ServerOption {
	return grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{t.cert}, ClientCAs: t.ca,
		ClientAuth: tls.VerifyClientCertIfGiven, MinVersion: tls.VersionTLS12}))
}

// DialOption makes a client verify the server against the CA and present the process's certificate: the
// connection of a service calling another.
func (t *TLS) DialOption() grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{t.cert}, RootCAs: t.ca,
		MinVersion: tls.VersionTLS12}))
}

// PublicDialOption verifies the server against the CA but presents no certificate: the gateway's
// connection, whose callers are public clients.
func (t *TLS) PublicDialOption() grpc.DialOption {
	return grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: t.ca, MinVersion: tls.VersionTLS12}))
}

// ClientDialOption verifies the server against a CA file without presenting a certificate (public
// clients such as hnsec admin).
func ClientDialOption(caFile string) (grpc.DialOption, error) {
	ca, err := loadCA(caFile)
	if err != nil {
		return nil, err
	}
	return (&TLS{ca: ca}).PublicDialOption(), nil
}

// verifiedPeer reports whether the caller presented a client certificate the internal CA signed.
func verifiedPeer(ctx context.Context) bool {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	return ok && len(info.State.VerifiedChains) > 0
}
