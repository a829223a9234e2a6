package admin

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"sort"
)

// The OpenAPI document is written in fragments, one per area of the API
// (admin/openapi/<area>.json, each {"paths": ..., "components": ...}), so
// that the areas are built and reviewed apart; base.json holds the rest of
// the document (info, security, the shared Error schema and responses).
//
//go:embed openapi/*.json
var openapiFiles embed.FS

// openapiBase is the fragment that holds the document's frame.
const openapiBase = "base.json"

// OpenAPI returns the API's OpenAPI 3.1 document: base.json with every
// other fragment's paths and components merged in. It returns an error
// naming the fragments when two define the same operation (path and
// method) or the same component, or when a fragment holds anything but
// paths and components.
func OpenAPI() ([]byte, error) {
	return mergeOpenAPI(openapiFiles)
}

// mergeOpenAPI merges the fragments of fsys (openapi/*.json).
func mergeOpenAPI(fsys fs.FS) ([]byte, error) {
	names, err := fs.Glob(fsys, "openapi/*.json")
	if err != nil {
		return nil, fmt.Errorf("openapi: list fragments: %w", err)
	}
	sort.Strings(names)
	read := func(name string) (map[string]any, error) {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("openapi: read %s: %w", name, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("openapi: parse %s: %w", name, err)
		}
		return m, nil
	}
	doc, err := read("openapi/" + openapiBase)
	if err != nil {
		return nil, err
	}
	owner := map[string]string{} // "paths /x get" or "schemas X" -> fragment
	note := func(frag string, m map[string]any, what string) {
		for k := range m {
			owner[what+" "+k] = frag
		}
	}
	paths := object(doc, "paths")
	for p, item := range paths {
		if ops, ok := item.(map[string]any); ok {
			note(openapiBase, ops, "path "+p)
		}
	}
	comps := object(doc, "components")
	for kind, v := range comps {
		if m, ok := v.(map[string]any); ok {
			note(openapiBase, m, kind)
		}
	}
	for _, name := range names {
		frag := path.Base(name)
		if frag == openapiBase {
			continue
		}
		m, err := read(name)
		if err != nil {
			return nil, err
		}
		for k := range m {
			if k != "paths" && k != "components" {
				return nil, fmt.Errorf("openapi: %s: key %q is not allowed in a fragment (only paths and components)", frag, k)
			}
		}
		for p, item := range object(m, "paths") {
			ops, ok := item.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("openapi: %s: path %s is not an object", frag, p)
			}
			into := object(paths, p)
			if err := mergeInto(into, ops, owner, "path "+p, frag); err != nil {
				return nil, err
			}
		}
		for kind, v := range object(m, "components") {
			cs, ok := v.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("openapi: %s: components.%s is not an object", frag, kind)
			}
			if err := mergeInto(object(comps, kind), cs, owner, kind, frag); err != nil {
				return nil, err
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("openapi: encode: %w", err)
	}
	return buf.Bytes(), nil
}

// mergeInto adds src's entries to dst, failing on one dst already has.
func mergeInto(dst, src map[string]any, owner map[string]string, what, frag string) error {
	keys := make([]string, 0, len(src))
	for k := range src {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if prev, dup := owner[what+" "+k]; dup {
			return fmt.Errorf("openapi: %s %s is defined by both %s and %s", what, k, prev, frag)
		}
		owner[what+" "+k] = frag
		dst[k] = src[k]
	}
	return nil
}

// object returns m[key] as an object, creating it if absent.
func object(m map[string]any, key string) map[string]any {
	if v, ok := m[key].(map[string]any); ok {
		return v
	}
	v := map[string]any{}
	m[key] = v
	return v
}

// openapiRoutes serves the document, without authentication: it is the
// contract a client is generated from before it holds a token.
func (s *Server) openapiRoutes(doc []byte) {
	s.mux.HandleFunc("GET /api/v1/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(doc)
	})
}
