package main

import (
	"database/sql"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// dispatcherRows counts a subscription's rows in the dispatcher's store: parked changes and dead letters
// (which hold the fnr), and delivery log entries; -1 when the database could not say.
func (s *testServer) dispatcherRows(db *sql.DB, id string) (parked, attempts int) {
	if db.QueryRow(`SELECT count(*) FROM parked WHERE subscription_id = ?`, id).Scan(&parked) != nil ||
		db.QueryRow(`SELECT count(*) FROM attempts WHERE subscription_id = ?`, id).Scan(&attempts) != nil {
		return -1, -1 // read again
	}
	return parked, attempts
}

// logLines returns the server's log lines with message msg, decoded.
func (s *testServer) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s.logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Deleting a webhook subscription deletes what the dispatcher keeps of it: its dead letters (whole events
// with the fnr) and its delivery log; the log says how many, never whose.
func TestDeletedSubscriptionLeavesNoDeadLetters(t *testing.T) {
	s := newWebhookServer(t)
	tok := s.token()
	rcv := newReceiver(t)
	rcv.setRespond(func(int, delivery) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	id := s.subscribe(tok, rcv, false, nil)
	n := s.writeChanges(tok, 400, 2, 2)
	require.Eventually(t, func() bool {
		r := s.subCall(http.MethodGet, "/"+id+"/dead-letters", tok, nil)
		return len(r.body["deadLetters"].([]any)) == n
	}, 10*time.Second, 20*time.Millisecond)
	db := s.serviceDB("dispatcher")
	parked, _ := s.dispatcherRows(db, id)
	require.Equal(t, n, parked)

	require.Equal(t, http.StatusOK, s.subCall(http.MethodDelete, "/"+id, tok, nil).status)
	require.Eventually(t, func() bool {
		parked, attempts := s.dispatcherRows(db, id)
		return parked == 0 && attempts == 0
	}, 10*time.Second, 50*time.Millisecond, "the deleted subscription's rows stay in the dispatcher's store")
	lines := s.logLines("subscription deleted: its personal data deleted")
	require.NotEmpty(t, lines)
	require.Equal(t, id, lines[0]["subscription_id"])
	require.Equal(t, float64(n), lines[0]["dead_letters"])
	for i := range 2 {
		require.NotContains(t, s.logs.String(), validFnr(400+i), "an fnr in the log")
	}
}

// Dead letters are deleted --dead-letter-retention after they died, with a log line per subscription
// saying how many (never an fnr).
func TestDeadLetterRetention(t *testing.T) {
	s := newWebhookServer(t, func(c *serveConfig) { c.Dispatcher.DeadLetterRetention = 2 * time.Second })
	tok := s.token()
	rcv := newReceiver(t)
	rcv.setRespond(func(int, delivery) (int, http.Header) { return http.StatusServiceUnavailable, nil })
	id := s.subscribe(tok, rcv, false, nil)
	n := s.writeChanges(tok, 410, 2, 2)
	db := s.serviceDB("dispatcher")
	deleted := func() (dead, parked int) {
		for _, l := range s.logLines("dead letter retention: personal data deleted") {
			if l["subscription_id"] == id {
				dead += int(l["dead_letters"].(float64))
				parked += int(l["parked_changes"].(float64))
			}
		}
		return dead, parked
	}
	require.Eventually(t, func() bool {
		dead, parked := deleted()
		left, _ := s.dispatcherRows(db, id)
		return dead+parked == n && left == 0
	}, 20*time.Second, 100*time.Millisecond, "every dead letter deleted after the retention, and logged")
	dead, _ := deleted()
	require.Positive(t, dead, "dead letters (not only waiting changes) were deleted")
	require.Empty(t, s.subCall(http.MethodGet, "/"+id+"/dead-letters", tok, nil).body["deadLetters"])
	require.Empty(t, rcv.delivered())
	for i := range 2 {
		require.NotContains(t, s.logs.String(), validFnr(410+i), "an fnr in the log")
	}
}
