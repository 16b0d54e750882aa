package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// dataLockFile is held, locked, by the process whose embedded NATS keeps its store in the data directory.
const dataLockFile = "hnsec.lock"

// errDataDirInUse is the start error of a second process on the same data directory.
var errDataDirInUse = errors.New("another hnsec process is using this data directory (its embedded NATS store is not shared); stop it, or give this one another --data-dir")

// lockDataDir takes the data directory's lock for this process, or fails at once when another process
// holds it: two embedded NATS servers on one store would corrupt it. The lock goes with the process (or
// the returned function), so a crash never leaves it behind.
func lockDataDir(dir string) (func() error, error) {
	f, err := os.OpenFile(filepath.Join(dir, dataLockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, errDataDirInUse)
		}
		return nil, fmt.Errorf("lock the data directory: %w", err)
	}
	return f.Close, nil
}
