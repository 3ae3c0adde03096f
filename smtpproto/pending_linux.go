package smtpproto

import (
	"net"
	"syscall"
)

// socketReadable peeks at the socket's receive queue without blocking
// (MSG_PEEK|MSG_DONTWAIT); a closed peer (EOF) counts as readable too, as
// the next read would not block. Connections that are not sockets (a
// dial hook's pipe) report false.
func socketReadable(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	readable := false
	raw.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		readable = err == nil // EAGAIN: nothing there
		return true           // never wait
	})
	return readable
}
