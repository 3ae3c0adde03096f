package pgstore

import (
	"context"
	"time"
)

// PauseRenewal makes s stop renewing its leases, as a process that hangs
// (SIGSTOP, a stalled VM) does while its session stays open.
func PauseRenewal(s *Store) { s.renewalPaused.Store(true) }

// SetNodeLockWait shortens how long Open waits for a node name's lock.
func SetNodeLockWait(d time.Duration) (restore func()) {
	old := nodeLockWait
	nodeLockWait = d
	return func() { nodeLockWait = old }
}

// DropNodeLock ends s's node-lock session, as the death of its process
// would, while s itself goes on: how a test stands for a crash whose
// goroutines are still mid-flight.
func DropNodeLock(s *Store) { s.nodeLock.Close(context.Background()) }
