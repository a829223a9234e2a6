package admin

import (
	"bytes"
	"net/http"
)

// heldAnswer is an http.ResponseWriter that holds the answer (status,
// headers, body) instead of sending it, until the request's audit entry
// is recorded (see audited.finish). The API's answers are small JSON
// documents, so holding one whole costs little; no mutating route streams.
type heldAnswer struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (h *heldAnswer) Header() http.Header { return h.header }

// WriteHeader keeps the first status, as net/http sends only the first.
func (h *heldAnswer) WriteHeader(code int) {
	if h.status == 0 {
		h.status = code
	}
}

func (h *heldAnswer) Write(b []byte) (int, error) {
	if h.status == 0 {
		h.status = http.StatusOK
	}
	return h.body.Write(b)
}

// reset forgets what was written.
func (h *heldAnswer) reset() {
	clear(h.header)
	h.status = 0
	h.body.Reset()
}

// sendTo sends the held answer, if any, through w.
func (h *heldAnswer) sendTo(w http.ResponseWriter) {
	if h.status == 0 {
		return
	}
	dst := w.Header()
	for k, v := range h.header {
		dst[k] = v
	}
	w.WriteHeader(h.status)
	_, _ = w.Write(h.body.Bytes())
}
