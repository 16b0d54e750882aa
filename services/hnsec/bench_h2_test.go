package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2Call is one unary gRPC call for runH2Load: its method, its request message (marshalled) and a check
// of the answer's message.
type h2Call struct {
	method  string
	request []byte
	check   func(answer []byte) error
}

// h2ReceiveWindow is the flow-control window the load generator grants the server, per stream and for the
// connection, so that answers never wait for a window update.
const h2ReceiveWindow = 1 << 30

// runH2Load keeps conns HTTP/2 connections to addr busy for d, each with streams unary gRPC calls in flight
// (like h2load): frames are written by hand from a header block and a message encoded once, and a call
// counts when its trailers carry grpc-status 0 and its answer passes the check. A grpc-go client costs about
// as much CPU per call as the server answering it, and the two share the machine's cores; this one costs a
// fraction of that, so the figures describe the server.
func runH2Load(addr string, call h2Call, conns, streams int, d time.Duration) loadResult {
	return runWorkers(conns, d, func(_ int, deadline time.Time) ([]time.Duration, int) {
		c := &h2Conn{call: call, streams: streams, deadline: deadline, lat: make([]time.Duration, 0, 1<<17)}
		for time.Now().Before(deadline) {
			if err := c.run(addr); err != nil {
				c.failed += max(len(c.inFlight), 1) // the calls the connection took down, or the dial
			}
		}
		return c.lat, c.failed
	})
}

// h2Conn is the state of one load connection.
type h2Conn struct {
	call     h2Call
	streams  int
	deadline time.Time

	fr         *http2.Framer
	block      []byte // the request's header block
	data       []byte // the request's DATA payload: the length-prefixed message
	next       uint32 // the next stream id
	sendWindow int64  // the server's connection window
	received   int64  // DATA bytes received since the last window update
	inFlight   map[uint32]*h2Stream

	lat    []time.Duration // latencies of the calls that passed
	failed int
}

// h2Stream is a call in flight.
type h2Stream struct {
	start  time.Time
	answer []byte
}

// run makes calls over a new connection until deadline has passed and none is in flight, or until the
// connection fails.
func (c *h2Conn) run(addr string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(c.deadline.Add(loadGrace)); err != nil { // a stalled server cannot hang the run
		return err
	}
	br, bw := bufio.NewReaderSize(conn, 32<<10), bufio.NewWriterSize(conn, 32<<10)
	c.fr = http2.NewFramer(bw, br)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.next, c.sendWindow, c.received, c.inFlight = 1, 65535, 0, map[uint32]*h2Stream{}
	if err := c.start(addr, bw); err != nil {
		return err
	}
	for len(c.inFlight) > 0 {
		if br.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		f, err := c.fr.ReadFrame()
		if err != nil {
			return err
		}
		if err := c.handle(f); err != nil {
			return err
		}
		if err := c.fill(); err != nil {
			return err
		}
	}
	return nil
}

// start writes the connection preface and settings, encodes the request once and starts the first calls.
func (c *h2Conn) start(addr string, bw *bufio.Writer) error {
	if _, err := bw.WriteString(http2.ClientPreface); err != nil {
		return err
	}
	if err := c.fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2ReceiveWindow}); err != nil {
		return err
	}
	if err := c.fr.WriteWindowUpdate(0, h2ReceiveWindow-65535); err != nil {
		return err
	}
	// Fields written "never indexed" leave both HPACK tables alone, so one block serves every request.
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for _, f := range [][2]string{{":method", "POST"}, {":scheme", "http"}, {":path", c.call.method}, {":authority", addr},
		{"content-type", "application/grpc"}, {"te", "trailers"}} {
		if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1], Sensitive: true}); err != nil {
			return err
		}
	}
	c.block = block.Bytes()
	c.data = append(binary.BigEndian.AppendUint32([]byte{0}, uint32(len(c.call.request))), c.call.request...)
	return c.fill()
}

// fill starts calls until streams are in flight, the server's connection window is spent or the deadline
// has passed.
func (c *h2Conn) fill() error {
	for len(c.inFlight) < c.streams && c.sendWindow >= int64(len(c.data)) && time.Now().Before(c.deadline) {
		id := c.next
		c.next += 2
		c.inFlight[id] = &h2Stream{start: time.Now()}
		c.sendWindow -= int64(len(c.data))
		if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: c.block, EndHeaders: true}); err != nil {
			return err
		}
		if err := c.fr.WriteData(id, true, c.data); err != nil {
			return err
		}
	}
	return nil
}

// handle takes one frame from the server.
func (c *h2Conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.DataFrame:
		if s := c.inFlight[f.StreamID]; s != nil {
			s.answer = append(s.answer, f.Data()...)
		}
		if c.received += int64(f.Length); c.received > h2ReceiveWindow/2 {
			if err := c.fr.WriteWindowUpdate(0, uint32(c.received)); err != nil {
				return err
			}
			c.received = 0
		}
	case *http2.MetaHeadersFrame:
		s := c.inFlight[f.StreamID]
		if s == nil || !f.StreamEnded() {
			return nil // the answer's headers: the outcome is in the trailers
		}
		delete(c.inFlight, f.StreamID)
		if h2Outcome(f, s.answer, c.call.check) != nil {
			c.failed++
		} else {
			c.lat = append(c.lat, time.Since(s.start))
		}
	case *http2.RSTStreamFrame:
		if c.inFlight[f.StreamID] != nil {
			delete(c.inFlight, f.StreamID)
			c.failed++
		}
	case *http2.WindowUpdateFrame:
		if f.StreamID == 0 {
			c.sendWindow += int64(f.Increment)
		}
	case *http2.SettingsFrame:
		if !f.IsAck() {
			return c.fr.WriteSettingsAck()
		}
	case *http2.PingFrame:
		if !f.IsAck() {
			return c.fr.WritePing(true, f.Data)
		}
	case *http2.GoAwayFrame:
		return fmt.Errorf("server sent GOAWAY %v", f.ErrCode)
	}
	return nil
}

// h2Outcome checks a finished call: grpc-status 0 in its trailers and one length-prefixed message that
// passes check.
func h2Outcome(trailers *http2.MetaHeadersFrame, answer []byte, check func([]byte) error) error {
	if st := trailers.PseudoValue("status"); st != "" && st != "200" {
		return fmt.Errorf("HTTP status %s", st)
	}
	var status string
	for _, f := range trailers.RegularFields() {
		if f.Name == "grpc-status" {
			status = f.Value
		}
	}
	if status != "0" {
		return fmt.Errorf("grpc-status %q", status)
	}
	if len(answer) < 5 || answer[0] != 0 || int(binary.BigEndian.Uint32(answer[1:5])) != len(answer)-5 {
		return errors.New("answer is not one uncompressed gRPC message")
	}
	return check(answer[5:])
}
