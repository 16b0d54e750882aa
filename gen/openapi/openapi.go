// Package openapi embeds the OpenAPI (Swagger 2.0) description of the REST gateway, generated from proto/
// and proto/hnsec/http_rules.yaml by protoc-gen-openapiv2.
package openapi

import _ "embed"

// JSON is the merged OpenAPI document for every service.
//
//go:embed hnsec.swagger.json
var JSON []byte
