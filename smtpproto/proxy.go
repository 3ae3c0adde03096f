package smtpproto

// This file is the HTTP CONNECT tunnel (RFC 9110 §9.3.6) with the exact
// request bytes JavaMail sends (docs/javamail.md "Connecting").

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"time"
)

// maxProxyHeader bounds the proxy's reply header.
const maxProxyHeader = 16 << 10

// httpConnect dials the proxy and asks it for a tunnel to target. It reads
// the reply byte by byte so that no byte of the SMTP greeting that may
// follow the header is swallowed.
func httpConnect(ctx context.Context, d *net.Dialer, proxyAddr, target, user, pass string, readTO time.Duration) (net.Conn, error) {
	nc, err := d.DialContext(ctx, "tcp", proxyAddr)
	if err != nil {
		return nil, err
	}
	var req strings.Builder
	fmt.Fprintf(&req, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", target, target)
	if user != "" && pass != "" {
		fmt.Fprintf(&req, "Proxy-Authorization: Basic %s\r\n", base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	}
	req.WriteString("Proxy-Connection: keep-alive\r\n\r\n")
	deadline := time.Now().Add(readTO)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	nc.SetDeadline(deadline)
	if _, err := nc.Write([]byte(req.String())); err != nil {
		nc.Close()
		return nil, err
	}
	var hdr []byte
	one := make([]byte, 1)
	for !strings.HasSuffix(string(hdr), "\r\n\r\n") && !strings.HasSuffix(string(hdr), "\n\n") {
		if len(hdr) > maxProxyHeader {
			nc.Close()
			return nil, fmt.Errorf("proxy %s: reply header larger than %d bytes", proxyAddr, maxProxyHeader)
		}
		if _, err := nc.Read(one); err != nil {
			nc.Close()
			return nil, fmt.Errorf("proxy %s: reading CONNECT reply: %w", proxyAddr, err)
		}
		hdr = append(hdr, one[0])
	}
	status, _, _ := strings.Cut(string(hdr), "\n")
	status = strings.TrimRight(status, "\r")
	if f := strings.Fields(status); len(f) < 2 || f[1] != "200" {
		nc.Close()
		return nil, fmt.Errorf("%w: connection through proxy %s to %s failed: %s", errProxyReply, proxyAddr, target, status)
	}
	nc.SetDeadline(time.Time{})
	return nc, nil
}
