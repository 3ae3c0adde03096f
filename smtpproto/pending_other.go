//go:build !linux

package smtpproto

import "net"

// socketReadable: without a non-blocking peek only the reader's own buffer
// is checked (pendingInput).
func socketReadable(net.Conn) bool { return false }
