package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	introspectionv1 "github.com/hnsec/hnsec/gen/hnsec/introspection/v1"
	"github.com/hnsec/hnsec/pkg/grpcx"
	"github.com/hnsec/hnsec/services/hnsec/localcluster"
	"github.com/hnsec/hnsec/services/pvk"
	"github.com/hnsec/hnsec/services/registry"
)

// childEnv makes the test binary run `hnsec serve` instead of the tests (see TestMain), so benchmarks
// measure a server in its own process, as deployed, with the load generator in another.
const childEnv = "HNSEC_BENCH_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		main2(strings.Split(args, " "))
		return
	}
	if os.Getenv(asHnsecEnv) != "" { // bin/hnsec of TestReadme
		main2(os.Args[1:])
		return
	}
	// The benchmarks' load generator shares the two cores with the server: it runs with the server's
	// runtime settings.
	setGCPercent()
	setProcs()
	os.Exit(m.Run())
}

// main2 is main with explicit arguments.
func main2(args []string) {
	os.Args = append([]string{"hnsec"}, args...)
	main()
}

// benchTarget is a running child server.
type benchTarget struct {
	base, grpcAddr, dataDir string
	dev                     registry.Credentials
	pid                     int
}

// cpu returns the CPU time the server process has used so far (user and system, from /proc), or 0 where
// there is no /proc.
func (t benchTarget) cpu() time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.pid))
	if err != nil {
		return 0
	}
	// The fields after the command name (which may hold spaces) start with the state; utime and stime
	// are fields 14 and 15 of the whole line, in clock ticks (100 per second on Linux).
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// measure runs load and adds the server's and the load generator's CPU time per successful request to its
// result.
func (t benchTarget) measure(load func() loadResult) loadResult {
	before, loadBefore := t.cpu(), ownCPU()
	r := load()
	if r.ok > 0 {
		r.cpuPerOp = (t.cpu() - before) / time.Duration(r.ok)
		r.loadCPUPerOp = (ownCPU() - loadBefore) / time.Duration(r.ok)
	}
	return r
}

// ownCPU returns the CPU time this process (the load generator) has used so far.
func ownCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// credentials reads a credentials file of the server's data directory.
func (t benchTarget) credentials(b testing.TB, file string) registry.Credentials {
	raw, err := os.ReadFile(filepath.Join(t.dataDir, file))
	if err != nil {
		b.Fatal(err)
	}
	var cred registry.Credentials
	if err := json.Unmarshal(raw, &cred); err != nil {
		b.Fatal(err)
	}
	return cred
}

// benchServer starts `hnsec serve --dev` as a child process on a fresh data directory.
func benchServer(b *testing.B, extra ...string) benchTarget {
	t, _ := childServer(b, b.TempDir(), extra...)
	return t
}

// childServer starts `hnsec serve --dev` on dir as a child process (stopped with SIGINT at the end of the
// test unless killed before) and returns it once it serves.
func childServer(b testing.TB, dir string, extra ...string) (benchTarget, *localcluster.Process) {
	b.Helper()
	args := append([]string{"serve", "--dev", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, extra...)
	if addr := os.Getenv("HNSEC_BENCH_DEBUG_ADDR"); addr != "" {
		args = append(args, "--debug-addr", addr) // profile the server: go tool pprof http://ADDR/debug/pprof/profile
	}
	args = append(args, strings.Fields(os.Getenv("HNSEC_BENCH_SERVER_ARGS"))...) // try a flag: HNSEC_BENCH_SERVER_ARGS=--commit-linger=0
	p := localcluster.NewProcess("hnsec", testRunner, args, dir, "")
	if err := p.Start(localcluster.StartTimeout); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(p.Stop)
	return target(b, p), p
}

// testRunner runs hnsec as this test binary (see TestMain).
func testRunner(args []string) *exec.Cmd {
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(args, " "))
	return cmd
}

// target is the benchTarget of a process that serves.
func target(b testing.TB, p *localcluster.Process) benchTarget {
	t := benchTarget{base: "http://" + p.HTTP, grpcAddr: p.GRPC, dataDir: p.DataDir, pid: p.Pid()}
	if _, err := os.Stat(filepath.Join(p.DataDir, registry.DevClientFile)); err == nil { // not written without the registry
		t.dev = t.credentials(b, registry.DevClientFile)
	}
	return t
}

// loadResult is what one load run measured.
type loadResult struct {
	ok, failed   int
	elapsed      time.Duration
	latencies    []time.Duration
	cpuPerOp     time.Duration // the server's CPU time per successful request; 0 when not measured
	loadCPUPerOp time.Duration // the load generator's, likewise
}

func (r loadResult) perSecond() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(float64(len(r.latencies)-1)*p)]
}

// runWorkers runs n workers until d has passed and gathers what they measured. Each worker returns the
// latencies of its successful requests and how many failed.
func runWorkers(n int, d time.Duration, worker func(i int, deadline time.Time) ([]time.Duration, int)) loadResult {
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat, failed := worker(i, deadline)
			mu.Lock()
			res.ok += len(lat)
			res.failed += failed
			res.latencies = append(res.latencies, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.latencies)
	return res
}

// loadGrace is how long after its deadline a load run waits for answers before it gives up on them.
const loadGrace = 5 * time.Second

// runLoad keeps conns connections busy for d, each sending the same pre-built HTTP/1.1 request and reading
// the answer before the next (like wrk). Raw connections keep the load generator's own CPU cost small, so
// the figures describe the server.
func runLoad(addr string, request []byte, conns int, d time.Duration) loadResult {
	return runRequests([]string{addr}, func(int, int) []byte { return request }, conns, d)
}

// runRequests is runLoad with request(worker, i) built for each request, and the connections spread
// over addrs.
func runRequests(addrs []string, request func(worker, i int) []byte, conns int, d time.Duration) loadResult {
	return runWorkers(conns, d, func(worker int, deadline time.Time) ([]time.Duration, int) {
		lat := make([]time.Duration, 0, 1<<16)
		failed := 0
		var conn net.Conn
		var br *bufio.Reader
		defer func() {
			if conn != nil {
				conn.Close()
			}
		}()
		for i := 0; time.Now().Before(deadline); i++ {
			if conn == nil {
				c, err := net.Dial("tcp", addrs[worker%len(addrs)])
				if err != nil {
					failed++
					continue
				}
				if err := c.SetDeadline(deadline.Add(loadGrace)); err != nil { // a stalled server cannot hang the run
					c.Close()
					failed++
					continue
				}
				conn, br = c, bufio.NewReaderSize(c, 4096)
			}
			t0 := time.Now()
			_, err := conn.Write(request(worker, i))
			status := 0
			if err == nil {
				status, err = readResponse(br)
			}
			if err != nil {
				failed++
				conn.Close()
				conn = nil
				continue
			}
			if status != http.StatusOK {
				failed++
				continue
			}
			lat = append(lat, time.Since(t0))
		}
		return lat, failed
	})
}

// readResponse reads one HTTP/1.1 response and returns its status code. It reads only what the load
// needs (the status line, Content-Length, the body's length in bytes), so the load generator, which shares
// the cores with the server, spends little of them: http.ReadResponse took a third of its CPU.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	_, rest, _ := bytes.Cut(line, []byte(" "))
	if len(rest) < 3 {
		return 0, fmt.Errorf("status line %q", line)
	}
	status, err := strconv.Atoi(string(rest[:3]))
	if err != nil {
		return 0, fmt.Errorf("status line %q", line)
	}
	length := -1
	for {
		if line, err = br.ReadSlice('\n'); err != nil {
			return 0, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			break
		}
		if name, value, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(name, []byte("Content-Length")) {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return 0, fmt.Errorf("header %q", line)
			}
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	_, err = br.Discard(length)
	return status, err
}

// tokenRequest is a raw HTTP/1.1 token request.
func tokenRequest(host, body string, header ...string) []byte {
	return formRequest("/sts/Token", host, body, header...)
}

// formRequest is a raw HTTP/1.1 form POST to path.
func formRequest(path, host, body string, header ...string) []byte {
	return rawPost(path, host, form, body, header...)
}

// rawPost is a raw HTTP/1.1 POST.
func rawPost(path, host, contentType, body string, header ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n", path, host, contentType, len(body))
	for _, h := range header {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n" + body)
	return []byte(b.String())
}

// benchDuration is how long each load step runs (HNSEC_BENCH_SECONDS, default 10).
func benchDuration() time.Duration {
	if s, err := time.ParseDuration(os.Getenv("HNSEC_BENCH_SECONDS") + "s"); err == nil && s > 0 {
		return s
	}
	return 10 * time.Second
}

// BenchmarkToken measures POST /sts/Token end to end (reference durably stored) at 16, 32 and 64 connections,
// with client_secret_post (form) and client_secret_basic.
func BenchmarkToken(b *testing.B) {
	srv := benchServer(b)
	cred := srv.dev
	host := strings.TrimPrefix(srv.base, "http://")
	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(cred.ClientID+":"+cred.ClientSecret))
	styles := map[string][]byte{
		"form":  tokenRequest(host, "grant_type=client_credentials&client_id="+cred.ClientID+"&client_secret="+cred.ClientSecret),
		"basic": tokenRequest(host, "grant_type=client_credentials", basic),
	}
	runLoad(host, styles["form"], 16, 2*time.Second) // warm-up
	printHeader("token auth", "tokens/s")
	for _, style := range []string{"form", "basic"} {
		for _, conns := range []int{16, 32, 64} {
			b.Run(fmt.Sprintf("%s/conns=%d", style, conns), func(b *testing.B) {
				report(b, style, conns, srv.measure(func() loadResult { return runLoad(host, styles[style], conns, benchDuration()) }), "tokens/s")
			})
		}
	}
}

// runGRPCLoad keeps workers goroutines calling call over conns connections for d.
func runGRPCLoad(conns []*grpc.ClientConn, workers int, d time.Duration, call func(ctx context.Context, conn *grpc.ClientConn) error) loadResult {
	return runWorkers(workers, d, func(i int, deadline time.Time) ([]time.Duration, int) {
		conn := conns[i%len(conns)]
		lat := make([]time.Duration, 0, 1<<16)
		failed := 0
		for time.Now().Before(deadline) {
			t0 := time.Now()
			if err := call(context.Background(), conn); err != nil {
				failed++
				continue
			}
			lat = append(lat, time.Since(t0))
		}
		return lat, failed
	})
}

// printHeader prints the head of report's table.
func printHeader(label, unit string) {
	fmt.Printf("\n%-16s %6s %12s %10s %10s %8s %14s %14s\n", label, "conns", unit, "p50", "p99", "errors", "server CPU/op", "loader CPU/op")
}

// report prints one result line and reports it to the benchmark.
func report(b *testing.B, label string, conns int, r loadResult, unit string) {
	fmt.Printf("%-16s %6d %12.0f %10s %10s %8d %14s %14s\n", label, conns, r.perSecond(),
		r.percentile(0.50).Round(10*time.Microsecond), r.percentile(0.99).Round(10*time.Microsecond), r.failed,
		r.cpuPerOp.Round(time.Microsecond), r.loadCPUPerOp.Round(time.Microsecond))
	b.ReportMetric(r.perSecond(), unit)
	b.ReportMetric(float64(r.percentile(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(r.percentile(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(r.failed), "errors")
	b.ReportMetric(float64(r.cpuPerOp.Nanoseconds())/1000, "server-cpu-µs/op")
}

// BenchmarkIntrospect measures introspection of an active token (cache hits) over gRPC and REST at 16,
// 32 and 64 concurrent callers. The gRPC load comes from runH2Load (4 connections, the callers spread over
// them as streams); one step with grpc-go's client shows what a client that costs as much as the server
// leaves of the two cores.
func BenchmarkIntrospect(b *testing.B) {
	srv := benchServer(b)
	api := srv.credentials(b, registry.DevAPIFile)
	host := strings.TrimPrefix(srv.base, "http://")
	tok := srv.token(b)
	const grpcConns = 4
	conns := make([]*grpc.ClientConn, grpcConns)
	for i := range conns {
		var err error
		if conns[i], err = grpcx.Dial(srv.grpcAddr, ""); err != nil {
			b.Fatal(err)
		}
		defer conns[i].Close()
	}
	req := &introspectionv1.IntrospectRequest{Token: tok, ClientId: api.ClientID, ClientSecret: api.ClientSecret}
	introspect := func(ctx context.Context, conn *grpc.ClientConn) error {
		r, err := introspectionv1.NewIntrospectionServiceClient(conn).Introspect(ctx, req)
		if err == nil && !r.GetActive() {
			err = fmt.Errorf("inactive")
		}
		return err
	}
	raw, err := proto.Marshal(req)
	if err != nil {
		b.Fatal(err)
	}
	h2 := h2Call{method: introspectionv1.IntrospectionService_Introspect_FullMethodName, request: raw, check: func(answer []byte) error {
		var r introspectionv1.IntrospectResponse
		if err := proto.Unmarshal(answer, &r); err != nil {
			return err
		}
		if !r.GetActive() {
			return errors.New("inactive")
		}
		return nil
	}}
	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(api.ClientID+":"+api.ClientSecret))
	rest := formRequest("/sts/introspect", host, "token="+tok, basic)
	runH2Load(srv.grpcAddr, h2, grpcConns, 4, 2*time.Second) // warm-up
	printHeader("introspect", "answers/s")
	for _, n := range []int{16, 32, 64} {
		b.Run(fmt.Sprintf("grpc/callers=%d", n), func(b *testing.B) {
			report(b, "grpc", n, srv.measure(func() loadResult { return runH2Load(srv.grpcAddr, h2, grpcConns, n/grpcConns, benchDuration()) }), "answers/s")
		})
	}
	b.Run("grpc-go/callers=32", func(b *testing.B) {
		report(b, "grpc (grpc-go)", 32, srv.measure(func() loadResult { return runGRPCLoad(conns, 32, benchDuration(), introspect) }), "answers/s")
	})
	for _, n := range []int{16, 32, 64} {
		b.Run(fmt.Sprintf("rest/conns=%d", n), func(b *testing.B) {
			report(b, "rest", n, srv.measure(func() loadResult { return runLoad(host, rest, n, benchDuration()) }), "answers/s")
		})
	}
}

// BenchmarkPVK measures privacy setting changes written through REST (each with its outbox row, durably)
// and the publish lag from commit to the change stream's acknowledgement (PVK's own histogram), at 16 and
// 64 connections.
func BenchmarkPVK(b *testing.B) {
	natsAddr, dir := freeAddr(b), b.TempDir()
	srv, _ := childServer(b, dir, "--nats-listen", natsAddr)
	host := strings.TrimPrefix(srv.base, "http://")
	tok := srv.token(b)
	nc, err := nats.Connect("nats://"+natsAddr, natsToken(b, dir))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}

	fnrs := make([]string, 20000)
	for i := range fnrs {
		fnrs[i] = validFnr(i)
	}
	auth := "Authorization: Bearer " + tok
	var pass atomic.Int64
	request := func(worker, i int) []byte {
		// Each worker toggles its own citizens, so every write is a real change.
		n := pass.Load()
		body := fmt.Sprintf(`{"innbyggerFnr":%q,"definisjonGuid":%q,"typePi":"samtykke","aktiv":%t,"tidspunkt":"2026-11-22T10:00:00Z"}`,
			fnrs[(worker*300+i)%len(fnrs)], pvk.DemoDefinition.GUID, (int64(i/300)+n)%2 == 0)
		return rawPost(pvkBase+"SettInnbyggersPersonvernInnstilling", host, "application/json", body, auth)
	}
	fmt.Printf("\n%-16s %6s %12s %10s %10s %8s %12s %12s %8s\n", "pvk writes", "conns", "changes/s", "p50", "p99", "errors", "lag p50",
		"lag p99", "backlog")
	for _, conns := range []int{16, 64} {
		b.Run(fmt.Sprintf("conns=%d", conns), func(b *testing.B) {
			before := scrapeHistogram(b, srv.base, "hnsec_pvk_publish_lag_seconds")
			r := runRequests([]string{host}, request, conns, benchDuration())
			pass.Add(1)
			// The backlog is what was committed but is not in the stream yet.
			committed, _ := pvkCounts(b, srv.dataDir)
			info, err := js.Stream(context.Background(), pvk.StreamName)
			if err != nil {
				b.Fatal(err)
			}
			backlog := committed - int64(info.CachedInfo().State.Msgs)
			time.Sleep(500 * time.Millisecond) // let the last changes reach the stream
			lag := scrapeHistogram(b, srv.base, "hnsec_pvk_publish_lag_seconds").minus(before)
			fmt.Printf("%-16s %6d %12.0f %10s %10s %8d %12s %12s %8d\n", "set", conns, r.perSecond(),
				r.percentile(0.50).Round(10*time.Microsecond), r.percentile(0.99).Round(10*time.Microsecond), r.failed,
				lag.quantile(0.50).Round(10*time.Microsecond), lag.quantile(0.99).Round(10*time.Microsecond), backlog)
			b.ReportMetric(r.perSecond(), "changes/s")
			b.ReportMetric(float64(lag.quantile(0.50).Microseconds())/1000, "lag-p50-ms")
			b.ReportMetric(float64(lag.quantile(0.99).Microseconds())/1000, "lag-p99-ms")
			b.ReportMetric(float64(r.failed), "errors")
		})
	}
}

// histogram is a Prometheus histogram's cumulative bucket counts, by upper bound in seconds.
type histogram struct {
	bounds []float64
	counts []float64
}

// scrapeHistogram reads a histogram from the server's /metrics.
func scrapeHistogram(b *testing.B, base, name string) histogram {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var h histogram
	sc := bufio.NewScanner(resp.Body)
	prefix := name + `_bucket{le="`
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		le, count, _ := strings.Cut(rest, `"} `)
		bound, err1 := strconv.ParseFloat(le, 64)
		n, err2 := strconv.ParseFloat(count, 64)
		if err1 != nil || err2 != nil {
			b.Fatalf("metric line %q", sc.Text())
		}
		h.bounds, h.counts = append(h.bounds, bound), append(h.counts, n)
	}
	if len(h.bounds) == 0 {
		b.Fatalf("no histogram %s in /metrics", name)
	}
	return h
}

// minus returns the observations made since o.
func (h histogram) minus(o histogram) histogram {
	d := histogram{bounds: h.bounds, counts: slices.Clone(h.counts)}
	for i := range d.counts {
		d.counts[i] -= o.counts[i]
	}
	return d
}

// quantile interpolates linearly within the bucket that holds the quantile, as PromQL's
// histogram_quantile does.
func (h histogram) quantile(q float64) time.Duration {
	total := h.counts[len(h.counts)-1]
	if total == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			if math.IsInf(h.bounds[i], 1) {
				return time.Duration(lower * float64(time.Second))
			}
			f := (rank - below) / (c - below)
			return time.Duration((lower + f*(h.bounds[i]-lower)) * float64(time.Second))
		}
		lower, below = h.bounds[i], c
	}
	return time.Duration(lower * float64(time.Second))
}

// The load generator's response reader: the status of each answer, the body skipped whole so the next
// answer on the connection starts where it should.
func TestReadResponse(t *testing.T) {
	tests := []struct {
		name, raw string
		status    []int
		err       string
	}{
		{"two answers", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" +
			"HTTP/1.1 401 Unauthorized\r\ncontent-length: 5\r\n\r\nnope!", []int{200, 401}, ""},
		{"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", nil, "response without Content-Length"},
		{"not HTTP", "hello\r\n", nil, `status line "hello\r\n"`},
		{"bad length", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", nil, `header "Content-Length: x\r\n"`},
		{"cut short", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", nil, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tt.raw))
			for _, want := range tt.status {
				if got, err := readResponse(br); got != want || err != nil {
					t.Fatalf("readResponse = %d, %v; want %d", got, err, want)
				}
			}
			if tt.err == "" {
				return
			}
			if _, err := readResponse(br); err == nil || err.Error() != tt.err {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
		})
	}
}
