package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/grpc-ecosystem/grpc-gateway/v2/utilities"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"
)

// Decoder errors reach the client and the log, so they name the field and the kind of problem and never
// a value: protojson's and grpc-gateway's own texts quote what the client sent (an fnr sent as a number,
// a secret sent unquoted), so they are never passed on. When protojson refuses a body, the body is walked
// again here against the message's descriptor to find the first field at fault.

// badJSON is the prefix of every error about a JSON body's content.
const badJSON = "request body is not valid JSON for this endpoint: "

// jsonProblem says why protojson refused b for a message of md: a syntax error by its byte offset, or
// the first field (in body order) whose value protojson does not take, by name and kind.
func jsonProblem(b []byte, md protoreflect.MessageDescriptor) string {
	if !json.Valid(b) {
		var syntax *json.SyntaxError
		if err := json.Unmarshal(b, new(json.RawMessage)); errors.As(err, &syntax) && syntax.Offset < int64(len(b)) {
			return fmt.Sprintf("syntax error at byte %d", syntax.Offset)
		}
		return "unexpected EOF"
	}
	if p := objectProblem(b, md, ""); p != "" {
		return p
	}
	if p := unknownField(b, md, ""); p != "" {
		return p
	}
	return "the body does not fit this endpoint's message"
}

// eachMember calls visit with each member of the JSON object raw, in body order, until visit names a
// problem, and returns it; ok is false when raw is not a JSON object. A member it cannot read ends the walk
// without a problem (protojson's refusal then stands as "does not fit").
func eachMember(raw []byte, visit func(key string, val json.RawMessage) string) (problem string, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", false
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", true
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return "", true
		}
		if p := visit(key, val); p != "" {
			return p, true
		}
	}
	return "", true
}

// unknownField names the first field of a JSON object (in body order, nested objects included) that md
// does not have, for the strict decoding of hnsec's own APIs. The name is the client's own text, so it is
// named only when it looks like a field name (letters, digits, "_", at most 64 characters); any other key
// could be a value sent by mistake.
func unknownField(raw []byte, md protoreflect.MessageDescriptor, path string) string {
	p, _ := eachMember(raw, func(key string, val json.RawMessage) string {
		fd := fieldNamed(md, key)
		if fd == nil {
			if !fieldLike(key) {
				return fmt.Sprintf("%s has a field that this endpoint does not know", objectName(path))
			}
			return fmt.Sprintf("field %s is not a field of this endpoint's message", join(path, key))
		}
		sub := fd.Message()
		if sub == nil || isWellKnown(sub) || fd.IsMap() || isNull(val) {
			return ""
		}
		items := []json.RawMessage{val}
		if fd.IsList() && json.Unmarshal(val, &items) != nil {
			return ""
		}
		for i, item := range items {
			name := join(path, key)
			if fd.IsList() {
				name += "[" + strconv.Itoa(i) + "]"
			}
			if p := unknownField(item, sub, name); p != "" {
				return p
			}
		}
		return ""
	})
	return p
}

// fieldLike reports whether a JSON key looks like a field name, and so may be named in an error.
func fieldLike(key string) bool {
	if key == "" || len(key) > 64 || (key[0] >= '0' && key[0] <= '9') {
		return false
	}
	for _, c := range key {
		if !(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
			return false
		}
	}
	return true
}

// objectProblem checks a JSON object against md field by field; path names the object ("" at the top).
func objectProblem(raw []byte, md protoreflect.MessageDescriptor, path string) string {
	seen := map[protoreflect.FieldNumber]bool{}
	oneofs := map[protoreflect.FullName]string{}
	p, ok := eachMember(raw, func(key string, val json.RawMessage) string {
		fd := fieldNamed(md, key)
		if fd == nil {
			return "" // unknown fields are ignored here (unknownField names them where they are refused)
		}
		// key is one of the field's own names (its JSON or proto name), never other client text.
		name := join(path, key)
		if seen[fd.Number()] {
			return fmt.Sprintf("field %s is given more than once", name)
		}
		seen[fd.Number()] = true
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() && !isNull(val) {
			if other, ok := oneofs[od.FullName()]; ok {
				return fmt.Sprintf("fields %s and %s cannot both be set", other, name)
			}
			oneofs[od.FullName()] = name
		}
		return fieldProblem(fd, val, name)
	})
	if !ok {
		return fmt.Sprintf("%s must be a JSON object, not %s", objectName(path), jsonKind(raw))
	}
	return p
}

// fieldProblem checks one field's JSON value.
func fieldProblem(fd protoreflect.FieldDescriptor, raw json.RawMessage, name string) string {
	if isNull(raw) {
		return ""
	}
	switch {
	case fd.IsMap():
		if jsonKind(raw) != "an object" {
			return fmt.Sprintf("field %s must be an object, not %s", name, jsonKind(raw))
		}
		if !fitsAlone(fd, raw) {
			return fmt.Sprintf("field %s has an entry whose key or value is not valid", name)
		}
	case fd.IsList():
		if jsonKind(raw) != "an array" {
			return fmt.Sprintf("field %s must be an array, not %s", name, jsonKind(raw))
		}
		var items []json.RawMessage
		if err := json.Unmarshal(raw, &items); err != nil {
			return ""
		}
		for i, item := range items {
			itemName := name + "[" + strconv.Itoa(i) + "]"
			if isNull(item) {
				return fmt.Sprintf("field %s may not be null", itemName)
			}
			if p := singularProblem(fd, item, itemName, true); p != "" {
				return p
			}
		}
	default:
		return singularProblem(fd, raw, name, false)
	}
	return ""
}

// singularProblem checks one value of a field (of a list when inList).
func singularProblem(fd protoreflect.FieldDescriptor, raw json.RawMessage, name string, inList bool) string {
	if md := fd.Message(); md != nil && !isWellKnown(md) {
		if jsonKind(raw) != "an object" {
			return fmt.Sprintf("field %s must be an object, not %s", name, jsonKind(raw))
		}
		return objectProblem(raw, md, name)
	}
	value := raw
	if inList {
		value = append(append([]byte{'['}, raw...), ']')
	}
	if fitsAlone(fd, value) {
		return ""
	}
	want, kinds := expected(fd)
	if !slices.Contains(kinds, jsonKind(raw)) {
		return fmt.Sprintf("field %s must be %s, not %s", name, want, jsonKind(raw))
	}
	return fmt.Sprintf("field %s is not %s", name, want)
}

// fitsAlone reports whether protojson takes raw as the value of fd in a message of its own: protojson
// decides, so its rules (number forms, ranges, enum names, base64, timestamps) are not written twice.
func fitsAlone(fd protoreflect.FieldDescriptor, raw json.RawMessage) bool {
	name, _ := json.Marshal(fd.JSONName())
	body := slices.Concat([]byte("{"), name, []byte(":"), raw, []byte("}"))
	return protojson.Unmarshal(body, newMessage(fd.ContainingMessage())) == nil
}

// newMessage returns an empty message of md: the generated type when it is registered.
func newMessage(md protoreflect.MessageDescriptor) proto.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
		return mt.New().Interface()
	}
	return dynamicpb.NewMessage(md)
}

// expected describes what a field's value must be, and the JSON kinds protojson reads it from.
func expected(fd protoreflect.FieldDescriptor) (string, []string) {
	if md := fd.Message(); md != nil {
		switch md.FullName() {
		case "google.protobuf.Timestamp":
			return "an RFC 3339 timestamp", []string{"a string"}
		case "google.protobuf.Duration":
			return `a duration in seconds such as "1.5s"`, []string{"a string"}
		case "google.protobuf.FieldMask":
			return "a comma-separated list of field names", []string{"a string"}
		case "google.protobuf.Struct", "google.protobuf.Empty", "google.protobuf.Any":
			return "an object", []string{"an object"}
		case "google.protobuf.ListValue":
			return "an array", []string{"an array"}
		case "google.protobuf.Value":
			return "a JSON value", []string{"a string", "a number", "a boolean", "an object", "an array"}
		}
		if v := md.Fields().ByName("value"); v != nil { // the wrappers
			return expected(v)
		}
		return "an object", []string{"an object"}
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "a string", []string{"a string"}
	case protoreflect.BytesKind:
		return "a base64 string", []string{"a string"}
	case protoreflect.BoolKind:
		return "true or false", []string{"a boolean"}
	case protoreflect.EnumKind:
		return "one of its enum names", []string{"a string", "a number"}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "a number", []string{"a number", "a string"}
	default:
		return "an integer in range", []string{"a number", "a string"}
	}
}

// isWellKnown reports whether md is one of protobuf's well-known types, which have JSON forms of their own.
func isWellKnown(md protoreflect.MessageDescriptor) bool {
	return md.ParentFile() != nil && strings.HasPrefix(md.ParentFile().Path(), "google/protobuf/")
}

// fieldNamed finds a field by the JSON or the proto name, as protojson does.
func fieldNamed(md protoreflect.MessageDescriptor, key string) protoreflect.FieldDescriptor {
	fields := md.Fields()
	if fd := fields.ByJSONName(key); fd != nil {
		return fd
	}
	if fd := fields.ByTextName(key); fd != nil && !fd.IsExtension() {
		return fd
	}
	return nil
}

// jsonKind names the kind of a JSON value by its first byte: never the value.
func jsonKind(raw []byte) string {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	if len(raw) == 0 {
		return "nothing"
	}
	switch c := raw[0]; {
	case c == '"':
		return "a string"
	case c == '{':
		return "an object"
	case c == '[':
		return "an array"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	default:
		return "a number"
	}
}

func isNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func objectName(path string) string {
	if path == "" {
		return "the body"
	}
	return "field " + path
}

// quietQueryParser is grpc-gateway's query parameter parser with errors that name the parameter (when it
// is a field of the request) and what it must be, never its value.
type quietQueryParser struct{}

// The parser is global in grpc-gateway (runtime.SetQueryParameterParser sets a package variable), so it
// is set once here, before any ServeMux serves, rather than as an option of each one.
func init() {
	runtime.NewServeMux(runtime.SetQueryParameterParser(quietQueryParser{}))
}

// Parse implements runtime.QueryParameterParser.
func (quietQueryParser) Parse(msg proto.Message, values url.Values, filter *utilities.DoubleArray) error {
	var parser runtime.DefaultQueryParser
	if err := parser.Parse(msg, values, filter); err == nil {
		return nil
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		probe := msg.ProtoReflect().New().Interface()
		if parser.Parse(probe, url.Values{k: values[k]}, filter) == nil {
			continue
		}
		fd, name := queryField(msg.ProtoReflect().Descriptor(), k)
		if fd == nil {
			return errors.New("a query parameter is not valid for this endpoint")
		}
		if len(values[k]) > 1 && !fd.IsList() {
			return fmt.Errorf("query parameter %s is given more than once", name)
		}
		want, _ := expected(fd)
		return fmt.Errorf("query parameter %s must be %s", name, want)
	}
	return errors.New("query parameters set the same field more than once")
}

// queryField resolves a query parameter's dotted name to its field, and names it by the fields' own names.
func queryField(md protoreflect.MessageDescriptor, key string) (protoreflect.FieldDescriptor, string) {
	key, _, _ = strings.Cut(key, "[") // map entries: field[key]
	var fd protoreflect.FieldDescriptor
	var names []string
	for part := range strings.SplitSeq(key, ".") {
		if md == nil {
			return nil, ""
		}
		if fd = fieldNamed(md, part); fd == nil {
			return nil, ""
		}
		names = append(names, part)
		md = fd.Message()
	}
	return fd, strings.Join(names, ".")
}
