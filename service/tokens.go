package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/aibos/worker/admin"
	"github.com/aibos/worker/broker/sqlitebroker"
)

// ErrServiceRunning: the embedded store is held by a running service, so
// tokens must be managed through its API.
var ErrServiceRunning = errors.New("the service is running")

// OpenTokens opens the store the configuration names and returns its API
// token store, for managing tokens while the service is stopped: that is
// how the first admin token is made. close releases the store. On the
// embedded store a running service holds the file's lock: the error then
// wraps ErrServiceRunning. On Redis nothing stops two processes sharing
// the store, so it works either way.
func OpenTokens(ctx context.Context, cfg *Config) (ts *admin.TokenStore, close func() error, err error) {
	if cfg == nil {
		return nil, nil, errors.New("service: open tokens: config is nil")
	}
	if err := cfg.Validate(); err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, cfg, nil)
	if errors.Is(err, sqlitebroker.ErrInUse) {
		return nil, nil, fmt.Errorf("service: open tokens: %w (%w): manage tokens through its API with --url and --token", ErrServiceRunning, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("service: open tokens: %w", err)
	}
	ts, err = admin.NewTokenStore(st.b, nil)
	if err != nil {
		_ = st.close()
		return nil, nil, fmt.Errorf("service: open tokens: %w", err)
	}
	return ts, st.close, nil
}
