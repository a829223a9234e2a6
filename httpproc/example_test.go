package httpproc_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	worker "github.com/aibos/worker"
	"github.com/aibos/worker/broker/sqlitebroker"
	"github.com/aibos/worker/httpproc"
)

// A receiver checks each call before trusting its body. Here the call is
// built with Sign; a real one comes from the worker.
func ExampleVerify() {
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	body := []byte(`{"id":"j1","type":"invoice.processing","data":{"amount":"12.50"}}`)
	sent := time.Now()
	sig, _ := httpproc.Sign(secret, "msg_1", sent, body)
	header := http.Header{}
	header.Set(httpproc.HeaderID, "msg_1")
	header.Set(httpproc.HeaderTimestamp, strconv.FormatInt(sent.Unix(), 10))
	header.Set(httpproc.HeaderSignature, sig)

	fmt.Println(httpproc.Verify(secret, header, body, 5*time.Minute))
	err := httpproc.Verify(secret, header, []byte(`{"id":"j1","data":{"amount":"99.00"}}`), 5*time.Minute)
	fmt.Println(errors.Is(err, httpproc.ErrNoMatchingSignature))
	// Output:
	// <nil>
	// true
}

// A job type bound to an application endpoint, with a callback to the
// application when each job finishes.
func ExampleNew() {
	b, err := sqlitebroker.Open("worker.db", sqlitebroker.Config{})
	if err != nil {
		panic(err)
	}
	defer b.Close()
	secret := "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	p, err := httpproc.New(httpproc.EndpointConfig{URL: "https://app.internal/jobs/invoice", Secret: secret})
	if err != nil {
		panic(err)
	}
	cb, err := httpproc.NewCallbacks(b, httpproc.CallbackConfig{URL: "https://app.internal/hooks/worker", Secret: secret})
	if err != nil {
		panic(err)
	}
	m, err := worker.NewManager(b, worker.ManagerConfig{Queues: []worker.QueueConfig{{Name: "invoices"}}})
	if err != nil {
		panic(err)
	}
	if err := m.Register("invoice.processing", cb.Wrap(p)); err != nil {
		panic(err)
	}
	if err := cb.Attach(m); err != nil {
		panic(err)
	}
	_ = m.Run(context.Background()) // until cancelled
}
