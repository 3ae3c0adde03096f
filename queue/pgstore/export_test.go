package pgstore

import "time"

// PauseRenewal makes s stop renewing its leases, as a process that hangs
// (SIGSTOP, a stalled VM) does while its session stays open.
func PauseRenewal(s *Store) { s.renewalPaused.Store(true) }

// SetNodeLockWait shortens how long Open waits for a node name's lock.
func SetNodeLockWait(d time.Duration) (restore func()) {
	old := nodeLockWait
	nodeLockWait = d
	return func() { nodeLockWait = old }
}
