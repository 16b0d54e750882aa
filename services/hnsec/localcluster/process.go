// Package localcluster runs the scale-out deployment on loopback, every part a process of its own: a
// 3-node NATS cluster, and the registry, PVK and replicas of the STS, introspection, the dispatcher and
// the gateway, all on one PostgreSQL. `hnsec dev cluster` (deploy/local) starts it for developers; the
// cluster test and benchmarks drive it, killing and restarting its processes.
package localcluster

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServingMsg is the log message with which an hnsec process says it serves; its attributes http, grpc
// and nats name its addresses.
const ServingMsg = "hnsec serving"

// Runner returns the command that runs hnsec with args: the hnsec binary itself, or a test binary
// standing in for it.
type Runner func(args []string) *exec.Cmd

// Process is one running hnsec process.
type Process struct {
	// Name names the process in the cluster (nats-1, sts-2, gateway-1, ...).
	Name string
	// HTTP and GRPC are the addresses it serves on once started (empty when it has none); NATS is a NATS
	// node's client address.
	HTTP, GRPC, NATS string
	// DataDir is its data directory.
	DataDir string

	run  Runner
	args []string
	log  string // file its log is appended to, or ""

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	tail   []string // the last lines of its log
}

// NewProcess describes a process that runs `hnsec args...`; logFile, when set, receives its log.
func NewProcess(name string, run Runner, args []string, dataDir, logFile string) *Process {
	return &Process{Name: name, run: run, args: args, DataDir: dataDir, log: logFile}
}

// Start starts the process and waits up to timeout until it logs ServingMsg. A process that does not
// start in time is sent SIGQUIT (Go prints every goroutine); the error carries its last log lines and
// the goroutines.
func (p *Process) Start(timeout time.Duration) error {
	cmd := p.run(p.args)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = io.Discard
	var logFile *os.File
	if p.log != "" {
		if logFile, err = os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err != nil {
			return err
		}
	}
	if err := cmd.Start(); err != nil {
		if logFile != nil {
			logFile.Close()
		}
		return fmt.Errorf("%s: %w", p.Name, err)
	}
	exited := make(chan struct{})
	p.mu.Lock()
	p.cmd, p.exited, p.tail = cmd, exited, nil
	p.mu.Unlock()
	type serving struct {
		Msg              string `json:"msg"`
		HTTP, GRPC, NATS string
	}
	started := make(chan serving, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var line serving
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == ServingMsg {
				select {
				case started <- line:
				default:
				}
			}
			if logFile != nil {
				_, _ = logFile.Write(append(sc.Bytes(), '\n'))
			}
			p.mu.Lock()
			p.tail = append(p.tail[max(0, len(p.tail)-99):], sc.Text())
			p.mu.Unlock()
		}
		_ = cmd.Wait()
		if logFile != nil {
			logFile.Close()
		}
		close(exited)
	}()
	select {
	case s := <-started:
		p.mu.Lock()
		p.HTTP, p.GRPC, p.NATS = s.HTTP, s.GRPC, s.NATS
		p.mu.Unlock()
		return nil
	case <-exited:
		return fmt.Errorf("%s exited before serving:\n%s", p.Name, p.Tail())
	case <-time.After(timeout):
		said := p.Tail()
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
		}
		return fmt.Errorf("%s did not start within %s; its log:\n%s\nits goroutines (SIGQUIT):\n%s", p.Name, timeout, said, p.Tail())
	}
}

// Tail returns the process's last log lines.
func (p *Process) Tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// Kill kills the process with SIGKILL and waits for it.
func (p *Process) Kill() { p.Signal(syscall.SIGKILL) }

// Stop asks the process to shut down (SIGINT) and waits for it.
func (p *Process) Stop() { p.Signal(os.Interrupt) }

// Signal sends sig to the process and waits for it to exit; it does nothing to one never started.
func (p *Process) Signal(sig os.Signal) {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	<-exited
}

// Pid is the process id of the running process.
func (p *Process) Pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd.Process.Pid
}

// FreeAddr returns a loopback address with a port no one listens on: for processes that must know each
// other's addresses before they start. The port lies below the kernel's ephemeral range, where the OS
// never picks the local port of an outgoing connection, so between this check and the process's own
// listen only another deliberate listener can take it (a port the OS hands out with :0 can meanwhile
// become the local port of any connection, and the process then fails to listen).
func FreeAddr() (string, error) {
	low := ephemeralLow()
	for range 100 {
		port := 10000 + rand.IntN(max(1, low-10000))
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			addr := l.Addr().String()
			return addr, l.Close()
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// ephemeralLow is the first port of the kernel's ephemeral range (Linux; 32768 elsewhere).
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 10000 {
				low = n
			}
		}
	}
	return low
}
