// Package apitest serves the admin API on a real listener for tests and
// checks every request and response against the API's OpenAPI document
// with a maintained OpenAPI 3.1 validator (libopenapi-validator).
//
// A test of an area of the API starts a server over a real broker and
// sends its requests through Server.Do, which validates both sides:
//
//	srv := apitest.Start(t, admin.Config{Broker: b})
//	r := srv.Do(t, "GET", "/api/v1/queues", apitest.Admin, nil)
//	r.Want(t, 200)
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/paths"
	v3 "github.com/pb33f/libopenapi/datamodel/high/v3"

	"github.com/aibos/worker"
	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/broker"
)

// The tokens Start's default Authenticator accepts: one per role, cross
// tenant, and one per role scoped to each of the tenants TenantA and
// TenantB ("admin-a", "operator-b", ...).
const (
	Admin    = "admin"
	Operator = "operator"
	Viewer   = "viewer"
	TenantA  = "tenant-a"
	TenantB  = "tenant-b"
)

// Scoped returns the name of the default token of role scoped to tenant
// (TenantA or TenantB).
func Scoped(role admin.Role, tenant string) string {
	return string(role) + "-" + strings.TrimPrefix(tenant, "tenant-")
}

// Tokens is an Authenticator over a fixed map from token to Principal,
// for tests of handlers before, or apart from, the token store.
type Tokens map[string]*admin.Principal

// Authenticate returns the token's Principal, or ErrUnauthenticated.
func (t Tokens) Authenticate(_ context.Context, token string) (*admin.Principal, error) {
	p, ok := t[token]
	if !ok {
		return nil, fmt.Errorf("token not accepted: %w", admin.ErrUnauthenticated)
	}
	cp := *p
	return &cp, nil
}

// DefaultTokens returns the tokens described at Admin.
func DefaultTokens() Tokens {
	t := Tokens{}
	for _, r := range []admin.Role{admin.RoleAdmin, admin.RoleOperator, admin.RoleViewer} {
		t[string(r)] = &admin.Principal{TokenID: string(r), Name: string(r), Role: r}
		for _, tenant := range []string{TenantA, TenantB} {
			name := Scoped(r, tenant)
			t[name] = &admin.Principal{TokenID: name, Name: name, Role: r, TenantID: tenant}
		}
	}
	return t
}

// Server is an API server on a real listener.
type Server struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:41234.
	URL string
	// API is the handler being served.
	API *admin.Server
	// Config is the configuration it was made with, defaults filled in.
	Config admin.Config
	// HTTP is the listener's server; tests may close it to see clients
	// fail over.
	HTTP *httptest.Server
}

// Start serves the API made from cfg on 127.0.0.1 at a free port until
// the test ends. cfg.Broker is required; a nil cfg.Client becomes a
// Client over cfg.Broker, a nil cfg.Auth becomes DefaultTokens().
func Start(t testing.TB, cfg admin.Config) *Server {
	t.Helper()
	if cfg.Broker == nil {
		t.Fatal("apitest: start: Config.Broker is nil")
	}
	if cfg.Client == nil {
		c, err := worker.NewClient(cfg.Broker, worker.ClientConfig{})
		if err != nil {
			t.Fatalf("apitest: start: new client: %v", err)
		}
		cfg.Client = c
	}
	if cfg.Auth == nil {
		cfg.Auth = DefaultTokens()
	}
	api, err := admin.New(cfg)
	if err != nil {
		t.Fatalf("apitest: start: %v", err)
	}
	hs := httptest.NewServer(api)
	t.Cleanup(hs.Close)
	return &Server{URL: hs.URL, API: api, Config: cfg, HTTP: hs}
}

// Broker returns the server's broker.
func (s *Server) Broker() broker.Broker { return s.Config.Broker }

// Response is an answer read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// Want fails the test unless the status is want, showing the body.
func (r *Response) Want(t testing.TB, want int) *Response {
	t.Helper()
	if r.Status != want {
		t.Fatalf("status %d, want %d; body: %s", r.Status, want, r.Body)
	}
	return r
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode body %s: %v", r.Body, err)
	}
}

// Error decodes an error body.
func (r *Response) Error(t testing.TB) admin.Error {
	t.Helper()
	var e struct {
		Error admin.Error `json:"error"`
	}
	r.JSON(t, &e)
	e.Error.Status = r.Status
	return e.Error
}

// WantError fails the test unless the answer is an error with status and
// code, and returns it.
func (r *Response) WantError(t testing.TB, status int, code string) admin.Error {
	t.Helper()
	r.Want(t, status)
	e := r.Error(t)
	if e.Code != code {
		t.Fatalf("error code %q, want %q; body: %s", e.Code, code, r.Body)
	}
	return e
}

// Do sends a request and validates it and its answer against the OpenAPI
// document (see Validate). body is nil for none, a []byte or string sent
// as is (with Content-Type application/json), or any other value encoded
// as JSON. headers are name, value pairs. An empty token sends no
// Authorization header.
func (s *Server) Do(t testing.TB, method, path, token string, body any, headers ...string) *Response {
	t.Helper()
	req := NewRequest(t, method, s.URL+path, token, body, headers...)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	Validate(t, req, resp)
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// NewRequest builds a request as Do sends it.
func NewRequest(t testing.TB, method, url, token string, body any, headers ...string) *http.Request {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if len(headers)%2 != 0 {
		t.Fatalf("headers %q: want name, value pairs", headers)
	}
	for i := 0; i < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return req
}

var (
	once    sync.Once
	valid   validator.Validator
	model   *v3.Document
	loadErr error
)

// load builds the validator once per test binary: the document does not
// change while it runs, and building it costs far more than using it.
func load() (validator.Validator, error) {
	once.Do(func() {
		spec, err := admin.OpenAPI()
		if err != nil {
			loadErr = err
			return
		}
		doc, err := libopenapi.NewDocument(spec)
		if err != nil {
			loadErr = fmt.Errorf("apitest: parse the openapi document: %w", err)
			return
		}
		v, errs := validator.NewValidator(doc)
		if len(errs) > 0 {
			loadErr = fmt.Errorf("apitest: build the validator: %v", errs)
			return
		}
		if ok, verrs := v.ValidateDocument(); !ok {
			loadErr = fmt.Errorf("apitest: the openapi document is not valid: %s", describe(verrs))
			return
		}
		m, err := doc.BuildV3Model()
		if err != nil {
			loadErr = fmt.Errorf("apitest: build the openapi model: %w", err)
			return
		}
		valid, model = v, &m.Model
	})
	return valid, loadErr
}

// Validate checks resp against the OpenAPI document: its status must be
// documented for the operation, its body must match that status's schema.
// When the server accepted the request (a status below 400), the request
// must match the document too: parameters and body. A request the server
// refused is not checked, since tests send bad ones on purpose. resp's
// body stays readable; req's body is read through req.GetBody.
func Validate(t testing.TB, req *http.Request, resp *http.Response) {
	t.Helper()
	v, err := load()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("validate: read the response body: %v", err)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	check := *resp
	check.Body = io.NopCloser(bytes.NewReader(body))
	if ok, errs := v.ValidateHttpResponse(fresh(t, req), &check); !ok {
		t.Errorf("%s %s → %d does not match the OpenAPI document: %s\nbody: %s", req.Method, req.URL.Path, resp.StatusCode, describe(errs), body)
	}
	record(req, resp.StatusCode)
	if resp.StatusCode < 400 {
		if ok, errs := v.ValidateHttpRequestSync(fresh(t, req)); !ok {
			t.Errorf("%s %s (accepted with %d) does not match the OpenAPI document: %s", req.Method, req.URL.RequestURI(), resp.StatusCode, describe(errs))
		}
	}
}

// fresh returns a copy of req with its body readable again.
func fresh(t testing.TB, req *http.Request) *http.Request {
	t.Helper()
	r := req.Clone(context.Background())
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			t.Fatalf("validate: reread the request body: %v", err)
		}
		r.Body = b
	}
	return r
}

func describe[E interface{ Error() string }](errs []E) string {
	var b strings.Builder
	for _, e := range errs {
		b.WriteString("\n  - ")
		b.WriteString(e.Error())
	}
	return b.String()
}

// covered records, per operation of the document ("GET /api/v1/jobs/{id}"),
// whether a validated answer succeeded (status below 400) and whether one
// was an error.
var (
	coverMu sync.Mutex
	covered = map[string]*[2]bool{}
)

func record(req *http.Request, status int) {
	_, errs, tmpl := paths.FindPath(req, model, nil)
	if len(errs) > 0 || tmpl == "" {
		return
	}
	coverMu.Lock()
	defer coverMu.Unlock()
	op := req.Method + " " + tmpl
	c := covered[op]
	if c == nil {
		c = new([2]bool)
		covered[op] = c
	}
	c[boolIndex(status >= 400)] = true
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

// CheckCoverage returns an error naming every operation of the OpenAPI
// document that no validated answer exercised with a success (a status
// below 400) and with an error, in this test binary so far. A package
// calls it after its whole run (not after a -run subset) so that a new
// endpoint cannot ship with only its happy path, or none, checked
// against the document.
func CheckCoverage() error {
	if _, err := load(); err != nil {
		return err
	}
	coverMu.Lock()
	defer coverMu.Unlock()
	var missing []string
	for path, item := range model.Paths.PathItems.FromOldest() {
		for method := range item.GetOperations().FromOldest() {
			op := strings.ToUpper(method) + " " + path
			c := covered[op]
			switch {
			case c == nil:
				missing = append(missing, op+": never called")
			case !c[0]:
				missing = append(missing, op+": no success answer")
			case !c[1]:
				missing = append(missing, op+": no error answer")
			}
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("apitest: %d operations of the OpenAPI document are not covered by validated answers:\n  %s", len(missing), strings.Join(missing, "\n  "))
	}
	return nil
}
