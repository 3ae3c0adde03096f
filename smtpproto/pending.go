package smtpproto

// This file answers "has the server sent anything we have not read?",
// without waiting, so that bytes arriving before the final dot or left
// over after a reply are caught (RFC 5321 §4.5.2: the server replies to
// the end of data, never before; RFC 2920 §3.1: no reply is sent
// unprompted).

import (
	"crypto/tls"
)

// pendingInput reports unread server bytes: buffered by the reader, or
// waiting in the socket's receive queue.
func (c *Conn) pendingInput() bool {
	if c.br.Buffered() > 0 {
		return true
	}
	nc := c.nc
	if tc, ok := nc.(*tls.Conn); ok {
		// Any TLS record now is an unsolicited one: the handshake's
		// session tickets were read with the replies that followed it.
		nc = tc.NetConn()
	}
	return socketReadable(nc)
}
