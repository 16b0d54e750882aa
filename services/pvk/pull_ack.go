package pvk

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// Acknowledgement ids of pulled changes.
//
// A pulled change's ack id carries what acknowledging it takes: the JetStream acknowledgement subject
// of its delivery (stream, consumer, stream and consumer sequence), and the time its ack wait ends. It is
// sealed with AES-256-GCM under a key every PVK replica reads from PVK's database (settings_kv
// "ack_key"), bound to the subscription, so any replica can acknowledge a change another one handed
// out, a subscriber cannot forge or alter an ack id, nor use one with another subscription, and the
// subject (the stream's and the consumer's names) stays hidden. No replica keeps anything in memory.

// ackKeyName is the settings_kv entry of the ack id key.
const ackKeyName = "ack_key"

// ackIDVersion starts every sealed ack id, so that the format can change.
const ackIDVersion = 1

// ackAckTimeout bounds the wait for JetStream's confirmation of one acknowledgement.
const ackAckTimeout = 5 * time.Second

// ackIDs seals and opens ack ids.
type ackIDs struct{ aead cipher.AEAD }

// newAckIDs returns the codec for a 256-bit key.
func newAckIDs(key []byte) (ackIDs, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return ackIDs{}, err
	}
	aead, err := cipher.NewGCM(block)
	return ackIDs{aead: aead}, err
}

// ackIDBinding is the additional data that binds a sealed ack id to its subscription.
func ackIDBinding(subscription string) []byte { return []byte("hnsec pvk ack id\x00" + subscription) }

// seal returns the ack id of a delivery (its JetStream reply subject) to subscription, good until expires.
func (a ackIDs) seal(subscription, reply string, expires time.Time) string {
	plain := make([]byte, 9, 9+len(reply))
	plain[0] = ackIDVersion
	binary.BigEndian.PutUint64(plain[1:], uint64(expires.UnixMilli()))
	plain = append(plain, reply...)
	nonce := make([]byte, a.aead.NonceSize(), a.aead.NonceSize()+len(plain)+a.aead.Overhead())
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (Go 1.24+).
	return base64.RawURLEncoding.EncodeToString(a.aead.Seal(nonce, nonce, plain, ackIDBinding(subscription)))
}

// errUnknownAckID is an ack id that is malformed, forged, another subscription's, or expired.
var errUnknownAckID = errors.New("unknown ack id")

// open returns the JetStream reply subject of an ack id sealed for subscription whose ack wait has not
// ended at now.
func (a ackIDs) open(subscription, id string, now time.Time) (string, error) {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) < a.aead.NonceSize()+a.aead.Overhead()+9 {
		return "", errUnknownAckID
	}
	n := a.aead.NonceSize()
	plain, err := a.aead.Open(nil, raw[:n], raw[n:], ackIDBinding(subscription))
	if err != nil || plain[0] != ackIDVersion {
		return "", errUnknownAckID
	}
	expires := time.UnixMilli(int64(binary.BigEndian.Uint64(plain[1:9])))
	reply := string(plain[9:])
	if now.After(expires) || reply == "" {
		return "", errUnknownAckID
	}
	return reply, nil
}

// ack acknowledges a delivery by its reply subject and waits for JetStream's confirmation, as
// jetstream.Msg.DoubleAck does, from any replica's connection.
func (s *Subscriptions) ack(ctx context.Context, reply string) error {
	ctx, cancel := context.WithTimeout(ctx, ackAckTimeout)
	defer cancel()
	_, err := s.pvk.bus.Conn.RequestWithContext(ctx, reply, []byte("+ACK"))
	return err
}
