package dispatcher

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/hnsec/hnsec/pkg/ssrf"
)

// Error classes of the delivery log: the kind of failure, never its text (which could echo a payload).
const (
	classTimeout         = "timeout"
	classConnect         = "connect"
	classAddressRefused  = "address_refused"
	classRedirect        = "http_3xx"
	classClientError     = "http_4xx"
	classServerError     = "http_5xx"
	classGone            = "http_410"
	classTooManyRequests = "http_429"
)

// target is a webhook subscription as the dispatcher delivers to it.
type target struct {
	ID, Subscriber, URL string
	XAuth               bool
	Filters             filters
	// signers sign with the current secret and, after a rotation, the previous one.
	signers []*standardwebhooks.Webhook
}

// result is the outcome of one attempt.
type result struct {
	StatusCode int
	Latency    time.Duration
	// Class is empty on success.
	Class string
	// RetryAfter is the receiver's Retry-After on 429 and 503.
	RetryAfter time.Duration
}

// sender POSTs changes to receivers.
type sender struct {
	client *http.Client
}

// newSender returns a sender whose connections go only to addresses the policy admits: the check runs on
// the address being dialled, after DNS, so a name that starts resolving elsewhere is still refused.
func newSender(policy ssrf.Policy, timeout time.Duration) *sender {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: policy.Control}
	return &sender{client: &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			DialContext:         dialer.DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        1024,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: timeout,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// send POSTs a change as a CloudEvent with the SystemToken and the Standard Webhooks headers: webhook-id
// is the change id on every attempt, so receivers can drop duplicates.
func (s *sender) send(ctx context.Context, t *target, c change, token string) result {
	now := time.Now()
	sigs := make([]string, 0, len(t.signers))
	for _, sg := range t.signers {
		sig, err := sg.Sign(c.ChangeID, now, c.Payload)
		if err != nil {
			return result{Class: classConnect}
		}
		sigs = append(sigs, sig)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(c.Payload))
	if err != nil {
		return result{Class: classConnect}
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set(standardwebhooks.HeaderWebhookID, c.ChangeID)
	req.Header.Set(standardwebhooks.HeaderWebhookTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(standardwebhooks.HeaderWebhookSignature, strings.Join(sigs, " "))
	auth := "Authorization"
	if t.XAuth {
		auth = "X-Authorization"
	}
	req.Header.Set(auth, "Bearer "+token)
	resp, err := s.client.Do(req)
	r := result{Latency: time.Since(now)}
	if err != nil {
		r.Class = classifyError(err)
		return r
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // keep the connection reusable
	resp.Body.Close()
	r.StatusCode = resp.StatusCode
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
	case resp.StatusCode == http.StatusGone:
		r.Class = classGone
	case resp.StatusCode == http.StatusTooManyRequests:
		r.Class, r.RetryAfter = classTooManyRequests, retryAfter(resp.Header.Get("Retry-After"), now)
	case resp.StatusCode == http.StatusServiceUnavailable:
		r.Class, r.RetryAfter = classServerError, retryAfter(resp.Header.Get("Retry-After"), now)
	case resp.StatusCode < 400:
		r.Class = classRedirect
	case resp.StatusCode < 500:
		r.Class = classClientError
	default:
		r.Class = classServerError
	}
	return r
}

// classifyError names the kind of a transport failure.
func classifyError(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, ssrf.ErrAddress):
		return classAddressRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return classTimeout
	default:
		return classConnect
	}
}

// retryAfter parses a Retry-After header: seconds or an HTTP date; 0 when absent or unreadable.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
