package redisbroker_test

import (
	"testing"

	"github.com/aibos/worker/broker"
	"github.com/aibos/worker/broker/brokertest"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) broker.Broker { return newBroker(t) })
}
