// Package gen is the root of the generated Go code for hnsec's APIs (see proto/). It is its own module so
// clients can import the API without the server. Nothing here is edited by hand except this file and
// openapi/openapi.go; run `make generate`.
package gen
