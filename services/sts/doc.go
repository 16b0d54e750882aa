// Package sts is the security token service (Helsenorge Sikkerhetstjeneste): the OAuth2 client
// credentials grant that issues seed 002's reference JWTs, and the lookup of the rights stored behind them.
//
// It owns the signing key ring and the issued token references (sts.db). It authenticates clients through
// pkg/clientauth (the registry's gRPC AuthenticateClient, cached) and never reads registry tables. It
// knows nothing of HTTP: the gateway maps REST to its gRPC API.
package sts
