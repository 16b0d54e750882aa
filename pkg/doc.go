// Package pkg is the root of hnsec's shared libraries: token formats and key material (reftoken, secrets),
// the one typed error with its OAuth2, Helsenorge, gRPC and HTTP mappings (apierr), correlation ids
// (correlation), SQL store helpers (store), NATS helpers (natsbus), gRPC server and client set-up (grpcx),
// logging and metrics (obs) and flag helpers (flagx). Nothing here knows about a particular service.
package pkg
