package tracing

import (
	"net/http"
	"strconv"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
)

// Transport returns an http.RoundTripper that runs each request through
// base (http.DefaultTransport when nil) in a client span and sends the
// span's context in the request's traceparent and tracestate headers, so
// the application's endpoint continues the job's trace. Use it as the
// Transport of httpproc.EndpointConfig.Client.
func (t *Tracer) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return &transport{t: t, base: base}
}

type transport struct {
	t    *Tracer
	base http.RoundTripper
}

// RoundTrip sends req in a span. It clones req: a RoundTripper must not
// change the caller's request.
func (tr *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	u := *req.URL
	u.User, u.RawQuery = nil, "" // credentials and query strings stay out of traces
	ctx, span := tr.t.tracer.Start(req.Context(), req.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(semconv.HTTPRequestMethodKey.String(req.Method), semconv.URLFull(u.String()),
			semconv.ServerAddress(u.Hostname())))
	defer span.End()
	if p, err := strconv.Atoi(u.Port()); err == nil {
		span.SetAttributes(semconv.ServerPort(p))
	}
	out := req.Clone(ctx)
	tr.t.prop.Inject(ctx, propagation.HeaderCarrier(out.Header))
	resp, err := tr.base.RoundTrip(out)
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return resp, err
	}
	span.SetAttributes(semconv.HTTPResponseStatusCode(resp.StatusCode))
	if resp.StatusCode >= 400 {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}
