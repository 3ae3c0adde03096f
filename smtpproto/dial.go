package smtpproto

// This file opens the TCP connection of a session: directly, through an
// HTTP CONNECT proxy or SOCKS5 (proxy wins over SOCKS, as in JavaMail),
// or through DialOptions.Dialer (the socket-factory hook), with local bind
// and socketFactory.fallback (docs/javamail.md "Connecting").

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"golang.org/x/net/proxy"
)

// dialPath is where a connection was dialled: the target "host:port" and,
// when a proxy or hook carried it, which ("" = direct).
type dialPath struct {
	target, via string
}

// dialTransport returns the connected socket and the path it took.
func dialTransport(ctx context.Context, s *Settings, opts *DialOptions) (net.Conn, dialPath, error) {
	host, port := s.Endpoint()
	if opts.ConnectHost != "" {
		host = opts.ConnectHost
	}
	connectTO, readTO, _ := s.Timeouts()
	local, err := localBindAddr(ctx, s)
	if err != nil {
		return nil, dialPath{}, &ConnectError{Host: host, Port: port, Timeout: connectTO, Err: err}
	}
	base := &net.Dialer{Timeout: connectTO}
	if local != nil {
		// Only a non-nil *net.TCPAddr: a typed nil in the interface would
		// make every error read "dial tcp <nil>->host:port".
		base.LocalAddr = local
	}

	var via string
	var hooked func(ctx context.Context, addr string) (net.Conn, error)
	switch {
	case opts.Dialer != nil:
		via = "dial hook"
		hooked = func(ctx context.Context, addr string) (net.Conn, error) { return opts.Dialer(ctx, "tcp", addr) }
	case s.ProxyHost != "":
		paddr := joinDefaultPort(s.ProxyHost, s.ProxyPort, 80)
		via = "http proxy " + paddr
		hooked = func(ctx context.Context, addr string) (net.Conn, error) {
			return httpConnect(ctx, base, paddr, addr, s.ProxyUser, s.ProxyPassword, readTO)
		}
	case s.SocksHost != "":
		saddr := joinDefaultPort(s.SocksHost, s.SocksPort, 1080)
		via = "socks5 " + saddr
		hooked = func(ctx context.Context, addr string) (net.Conn, error) {
			d, err := proxy.SOCKS5("tcp", saddr, nil, base)
			if err != nil {
				return nil, err
			}
			return d.(proxy.ContextDialer).DialContext(ctx, "tcp", addr)
		}
	}

	// The target port (docs/javamail.md "Connecting"): with implicit
	// TLS, ssl.socketFactory.port (mailq's TLS settings stand for the SSL
	// factory, so it applies to direct connections too); through a proxy or
	// hook, socketFactory.port; else the normal port. A fallback after a
	// failed proxy or hook uses the normal port, as JavaMail's does.
	tport := port
	if s.SSLEnable && s.SSLSocketFactoryPort > 0 {
		tport = s.SSLSocketFactoryPort
	} else if hooked != nil && s.SocketFactoryPort > 0 {
		tport = s.SocketFactoryPort
	}
	dctx, cancel := context.WithTimeout(ctx, connectTO)
	defer cancel()
	if hooked != nil {
		target := net.JoinHostPort(host, strconv.Itoa(tport))
		nc, err := hooked(dctx, target)
		if err == nil {
			return nc, dialPath{target: target, via: via}, nil
		}
		if !s.SocketFactoryFallback {
			return nil, dialPath{}, &ConnectError{Host: host, Port: tport, Timeout: connectTO, Via: via, Err: err}
		}
		opts.Logger.Warn().Str("route", s.Name).Str("via", via).Err(err).Msg("proxy/dial hook failed; socketFactory.fallback = true, connecting directly")
		dctx2, cancel2 := context.WithTimeout(ctx, connectTO)
		defer cancel2()
		dctx = dctx2
		tport = port
	}
	target := net.JoinHostPort(host, strconv.Itoa(tport))
	nc, err := base.DialContext(dctx, "tcp", target)
	if err != nil {
		return nil, dialPath{}, &ConnectError{Host: host, Port: tport, Timeout: connectTO, Err: err}
	}
	return nc, dialPath{target: target}, nil
}

// localBindAddr resolves localaddress/localport. localport alone binds the
// wildcard address (mailq; JavaMail ignores it).
func localBindAddr(ctx context.Context, s *Settings) (*net.TCPAddr, error) {
	if s.LocalAddress == "" && s.LocalPort == 0 {
		return nil, nil
	}
	a := &net.TCPAddr{Port: s.LocalPort}
	if s.LocalAddress != "" {
		if ip := net.ParseIP(s.LocalAddress); ip != nil {
			a.IP = ip
		} else {
			ips, err := net.DefaultResolver.LookupIPAddr(ctx, s.LocalAddress)
			if err != nil || len(ips) == 0 {
				return nil, fmt.Errorf("cannot resolve localaddress %q: %v", s.LocalAddress, err)
			}
			a.IP = ips[0].IP
		}
	}
	return a, nil
}

// joinDefaultPort turns "host[:port]" plus an overriding port key into
// "host:port".
func joinDefaultPort(hostport string, override, def int) string {
	h, p := hostport, def
	if hh, ps, err := net.SplitHostPort(hostport); err == nil {
		h = hh
		if n, err := strconv.Atoi(ps); err == nil {
			p = n
		}
	} else if strings.Count(hostport, ":") > 1 {
		h = strings.Trim(hostport, "[]") // bare IPv6
	}
	if override > 0 {
		p = override
	}
	return net.JoinHostPort(h, strconv.Itoa(p))
}

var errProxyReply = errors.New("proxy refused the tunnel")
