package main

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/hnsec/hnsec/services/pvk"
)

// Two PVK replicas (the second a process's worth of services of its own, on the first's NATS, database
// and peers): changes pulled through one are acknowledged through the other, ack ids are bound to their
// subscription, and deleting the subscription through the second deletes its durable consumer.
func TestPullAcknowledgedThroughAnotherPVKReplica(t *testing.T) {
	const ackWait = 3 * time.Second // ample for the calls between a pull and its ack on a loaded machine
	a := newTestServer(t, func(c *serveConfig) { c.NATSListen, c.PVK.AckWait = "127.0.0.1:0", ackWait })
	require.NotEmpty(t, a.natsURL)
	b := newTestServer(t, func(c *serveConfig) {
		c.Services, c.Dev = "pvk,gateway", false
		c.PeerAddr, c.NATSURL = a.cfg.GRPCAddr, a.natsURL
		c.DataDir = a.cfg.DataDir                                                             // the same PVK database (and credentials), as replicas share PostgreSQL
		c.DatabaseURL, c.DatabaseSchemaPrefix = a.cfg.DatabaseURL, a.cfg.DatabaseSchemaPrefix // on PostgreSQL, a's schemas
		c.KEKFile = filepath.Join(a.cfg.DataDir, "kek")
		c.PVK.AckWait, c.PVK.Relay = ackWait, false
	})
	tok := a.token()
	filters := map[string]any{"filters": map[string]any{"definisjonGuids": []string{pvk.DemoDefinition.GUID}}}
	r := a.subCall(http.MethodPost, "", tok, filters)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	id := r.body["subscription"].(map[string]any)["subscriptionId"].(string)
	r = a.subCall(http.MethodPost, "", tok, filters)
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	other := r.body["subscription"].(map[string]any)["subscriptionId"].(string)

	for i := range 3 {
		require.Equal(t, "endret", a.pvkCall("SettInnbyggersPersonvernInnstilling", tok, setBody(validFnr(20+i), true)).body["instansEndret"])
	}
	var acks []string
	require.EventuallyWithT(t, func(c *assertCollect) {
		_, ack := a.pull(tok, id, 100)
		acks = append(acks, ack...)
		require.Len(c, acks, 3)
	}, 5*time.Second, 50*time.Millisecond)

	// Another subscription's ack ids, and altered ones, are unknown; nothing is acknowledged by them.
	tampered := []byte(acks[0])
	tampered[len(tampered)/2] ^= 1
	r = b.subCall(http.MethodPost, "/"+other+":ack", tok, map[string]any{"ackIds": acks})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	require.Len(t, r.body["unknown"], 3)
	r = b.subCall(http.MethodPost, "/"+id+":ack", tok, map[string]any{"ackIds": []string{string(tampered)}})
	require.Len(t, r.body["unknown"], 1)

	// The other replica acknowledges what the first handed out: nothing comes back after the ack wait.
	r = b.subCall(http.MethodPost, "/"+id+":ack", tok, map[string]any{"ackIds": acks})
	require.Equal(t, http.StatusOK, r.status, "%s", r.raw)
	require.Equal(t, float64(3), r.body["acked"], "%s", r.raw)
	require.Empty(t, r.body["unknown"])
	time.Sleep(ackWait + 500*time.Millisecond)
	again, _ := b.pull(tok, id, 100)
	require.Empty(t, again, "acknowledged through the other replica, nothing is handed out again")
	again, _ = a.pull(tok, id, 100)
	require.Empty(t, again)

	// Deleted through the second replica, the subscription leaves no durable consumer behind.
	js, err := jetstream.New(a.nc)
	require.NoError(t, err)
	_, err = js.Consumer(context.Background(), pvk.StreamName, "sub-"+id)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, b.subCall(http.MethodDelete, "/"+id, tok, nil).status)
	_, err = js.Consumer(context.Background(), pvk.StreamName, "sub-"+id)
	require.ErrorIs(t, err, jetstream.ErrConsumerNotFound)
}
