// Package gateway is the REST face of every service: grpc-gateway handlers generated from
// proto/hnsec/http_rules.yaml, and for the four OAuth2 POST endpoints handlers of its own (oauth.go), all
// reached through the services' generated gRPC clients (over the network, or over the in-process channel
// in monolithic mode; interceptors run the same either way), plus /healthz, /readyz, /metrics and
// /openapi.json.
//
// It owns no data. It decodes request bodies (JSON, and form-urlencoded on the OAuth2 endpoints), limits
// their size and type, gives every request a korrelasjonsId and writes every error as one JSON object with
// the OAuth2 and Helsenorge fields (pkg/apierr). PVK's paths are matched without regard to case and answer
// with PVK's CorrelationId header too (pvk_paths.go). It must not call a service's Go code directly.
package gateway
