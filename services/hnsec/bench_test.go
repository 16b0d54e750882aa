package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

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
	os.Exit(m.Run())
}

// main2 is main with explicit arguments.
func main2(args []string) {
	os.Args = append([]string{"hnsec"}, args...)
	main()
}

// benchServer starts `hnsec serve --dev` as a child process and returns its REST base URL and demo client.
func benchServer(b *testing.B, extra ...string) (string, registry.Credentials) {
	b.Helper()
	dir := b.TempDir()
	args := append([]string{"serve", "--dev", "--data-dir", dir, "--http-addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(args, " "))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var line struct {
				Msg  string `json:"msg"`
				HTTP string `json:"http"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "hnsec serving" {
				addr <- line.HTTP
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(60 * time.Second):
		b.Fatal("server did not start")
	}
	raw, err := os.ReadFile(filepath.Join(dir, registry.DevClientFile))
	if err != nil {
		b.Fatal(err)
	}
	var cred registry.Credentials
	if err := json.Unmarshal(raw, &cred); err != nil {
		b.Fatal(err)
	}
	return base, cred
}

// loadResult is what one load run measured.
type loadResult struct {
	ok, failed int
	elapsed    time.Duration
	latencies  []time.Duration
}

func (r loadResult) perSecond() float64 { return float64(r.ok) / r.elapsed.Seconds() }

func (r loadResult) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.latencies[int(float64(len(r.latencies)-1)*p)]
}

// runLoad keeps conns connections busy for d, each sending the same pre-built HTTP/1.1 request and reading
// the answer before the next (like wrk), and measures every answer. Raw connections keep the load
// generator's own CPU cost small, so the figures describe the server.
func runLoad(addr string, request []byte, conns int, d time.Duration) loadResult {
	var (
		mu  sync.Mutex
		res loadResult
		wg  sync.WaitGroup
	)
	deadline := time.Now().Add(d)
	start := time.Now()
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 1<<16)
			ok, failed := 0, 0
			var conn net.Conn
			var br *bufio.Reader
			for time.Now().Before(deadline) {
				if conn == nil {
					c, err := net.Dial("tcp", addr)
					if err != nil {
						failed++
						continue
					}
					conn, br = c, bufio.NewReaderSize(c, 4096)
				}
				t0 := time.Now()
				_, err := conn.Write(request)
				var resp *http.Response
				if err == nil {
					resp, err = http.ReadResponse(br, nil)
				}
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil {
					failed++
					conn.Close()
					conn = nil
					continue
				}
				if resp.StatusCode != http.StatusOK {
					failed++
					continue
				}
				ok++
				lat = append(lat, time.Since(t0))
			}
			if conn != nil {
				conn.Close()
			}
			mu.Lock()
			res.ok += ok
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

// tokenRequest is a raw HTTP/1.1 token request.
func tokenRequest(host, body string, header ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "POST /sts/Token HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n", host, form, len(body))
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

// BenchmarkToken measures POST /sts/Token end to end (reference durably stored) at 16 and 64 connections,
// with client_secret_post (form) and client_secret_basic.
func BenchmarkToken(b *testing.B) {
	base, cred := benchServer(b)
	host := strings.TrimPrefix(base, "http://")
	basic := "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(cred.ClientID+":"+cred.ClientSecret))
	styles := map[string][]byte{
		"form":  tokenRequest(host, "grant_type=client_credentials&client_id="+cred.ClientID+"&client_secret="+cred.ClientSecret),
		"basic": tokenRequest(host, "grant_type=client_credentials", basic),
	}
	runLoad(host, styles["form"], 16, 2*time.Second) // warm-up
	fmt.Printf("\n%-8s %6s %12s %10s %10s %8s\n", "auth", "conns", "tokens/s", "p50", "p99", "errors")
	for _, style := range []string{"form", "basic"} {
		for _, conns := range []int{16, 64} {
			b.Run(fmt.Sprintf("%s/conns=%d", style, conns), func(b *testing.B) {
				r := runLoad(host, styles[style], conns, benchDuration())
				fmt.Printf("%-8s %6d %12.0f %10s %10s %8d\n", style, conns, r.perSecond(),
					r.percentile(0.50).Round(10*time.Microsecond), r.percentile(0.99).Round(10*time.Microsecond), r.failed)
				b.ReportMetric(r.perSecond(), "tokens/s")
				b.ReportMetric(float64(r.percentile(0.50).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(r.percentile(0.99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(r.failed), "errors")
			})
		}
	}
}
