package smtpproto

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakeHTTPProxy accepts one CONNECT, records its header, answers status
// and, on 200, relays to target.
func fakeHTTPProxy(t *testing.T, status, target string) (addr string, header chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	header = make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var h strings.Builder
		for {
			l, err := br.ReadString('\n')
			h.WriteString(l)
			if err != nil || l == "\r\n" {
				break
			}
		}
		header <- h.String()
		if !strings.Contains(status, " 200 ") {
			c.Write([]byte(status + "\r\n\r\n"))
			return
		}
		up, err := net.Dial("tcp", target)
		if err != nil {
			return
		}
		defer up.Close()
		c.Write([]byte(status + "\r\n\r\n"))
		go func() { io.Copy(up, br); up.Close() }()
		io.Copy(c, up)
	}()
	return ln.Addr().String(), header
}

func TestHTTPConnectProxy(t *testing.T) {
	cases := []struct {
		name       string
		status     string
		user, pass string
		wantHeader string
		ok         bool
	}{
		{"exact CONNECT bytes", "HTTP/1.1 200 Connection established", "", "",
			"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nProxy-Connection: keep-alive\r\n\r\n", true},
		{"proxy auth header", "HTTP/1.1 200 OK", "proxyuser", "proxypass",
			"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nProxy-Authorization: Basic cHJveHl1c2VyOnByb3h5cGFzcw==\r\nProxy-Connection: keep-alive\r\n\r\n", true},
		{"407 fails with the status line", "HTTP/1.1 407 Proxy Authentication Required", "", "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fs *fakeServer
			target := "127.0.0.1:1"
			if tc.ok {
				fs = startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")})
				target = "127.0.0.1:" + strconv.Itoa(fs.port())
			}
			paddr, header := fakeHTTPProxy(t, tc.status, target)
			s := &Settings{Name: "t", Host: "127.0.0.1", Port: 1, Localhost: "client.test", ProxyHost: paddr, ProxyUser: tc.user, ProxyPassword: tc.pass}
			if fs != nil {
				s.Port = fs.port()
			}
			c, err := Dial(context.Background(), s, DialOptions{})
			if !tc.ok {
				var ce *ConnectError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), "407 Proxy Authentication Required") {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h := <-header
			want := strings.ReplaceAll(tc.wantHeader, "%d", strconv.Itoa(fs.port()))
			if h != want {
				t.Fatalf("header %q, want %q", h, want)
			}
			if c.RemoteAddr() != target {
				t.Fatalf("RemoteAddr = %s", c.RemoteAddr())
			}
			fs.finish(c)
		})
	}
}

func TestSOCKSGreetingAndProxyPrecedence(t *testing.T) {
	cases := []struct {
		name  string
		set   func(s *Settings, socks, http string)
		wantH bool // the HTTP proxy, not SOCKS, got the connection
	}{
		{"socks.host:port gets a SOCKS5 greeting", func(s *Settings, socks, http string) { s.SocksHost = socks }, false},
		{"socks.port overrides", func(s *Settings, socks, http string) {
			h, p, _ := net.SplitHostPort(socks)
			s.SocksHost = h + ":1"
			s.SocksPort, _ = strconv.Atoi(p)
		}, false},
		{"proxy wins over SOCKS", func(s *Settings, socks, http string) { s.SocksHost = socks; s.ProxyHost = http }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first := make(chan []byte, 2)
			listen := func() string {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { ln.Close() })
				go func() {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					b := make([]byte, 3)
					c.SetReadDeadline(time.Now().Add(5 * time.Second))
					n, _ := io.ReadAtLeast(c, b, 1)
					first <- b[:n]
					c.Close()
				}()
				return ln.Addr().String()
			}
			socks, http := listen(), listen()
			s := &Settings{Name: "t", Host: "127.0.0.1", Port: 25}
			tc.set(s, socks, http)
			_, err := Dial(context.Background(), s, DialOptions{})
			var ce *ConnectError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v", err)
			}
			b := <-first
			if tc.wantH != (string(b) == "CON") || !tc.wantH && b[0] != 0x05 {
				t.Fatalf("first bytes %q", b)
			}
		})
	}
}

func TestDialHookFallbackAndPorts(t *testing.T) {
	cases := []struct {
		name     string
		fallback bool
		set      func(*Settings)
		wantAddr string
		ok       bool
	}{
		{"hook fails, fallback true: direct dial", true, nil, "", true},
		{"hook fails, fallback false: error", false, nil, "", false},
		{"socketFactory.port given to the hook", false, func(s *Settings) { s.SocketFactoryPort = 2526 }, "127.0.0.1:2526", false},
		{"host unset dials localhost:25", false, func(s *Settings) { s.Host, s.Port = "", 0 }, "localhost:25", false},
		{"ssl.enable defaults to 465", false, func(s *Settings) { s.Port = 0; s.SSLEnable = true }, "127.0.0.1:465", false},
		{"ssl.socketFactory.port given to the hook with ssl.enable", false, func(s *Settings) { s.SSLEnable, s.SSLSocketFactoryPort, s.SocketFactoryPort = true, 2465, 2526 }, "127.0.0.1:2465", false},
		{"ssl.socketFactory.port ignored without ssl.enable", false, func(s *Settings) { s.SSLSocketFactoryPort, s.SocketFactoryPort = 2465, 2526 }, "127.0.0.1:2526", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fs *fakeServer
			s := &Settings{Name: "t", Host: "127.0.0.1", Port: 1, Localhost: "client.test", SocketFactoryFallback: tc.fallback}
			if tc.ok {
				fs = startFake(t, "220 fake", step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")})
				s.Port = fs.port()
			}
			if tc.set != nil {
				tc.set(s)
			}
			var got string
			c, err := Dial(context.Background(), s, DialOptions{Dialer: func(ctx context.Context, n, a string) (net.Conn, error) {
				got = a
				return nil, errors.New("hook refuses")
			}})
			if tc.ok != (err == nil) {
				t.Fatalf("err = %v", err)
			}
			if tc.wantAddr != "" && got != tc.wantAddr {
				t.Fatalf("hook got %q, want %q", got, tc.wantAddr)
			}
			if fs != nil {
				fs.finish(c)
			}
		})
	}
}

// TestDirectDialPorts: without a proxy or hook, ssl.socketFactory.port is
// the port of an implicit-TLS route, socketFactory.port is not used, and
// neither changes a plaintext route.
func TestDirectDialPorts(t *testing.T) {
	p := newPKI(t)
	cases := []struct {
		name string
		tls  bool
		set  func(s *Settings, serverPort int)
	}{
		{"ssl.socketFactory.port with ssl.enable", true, func(s *Settings, sp int) { s.Port, s.SSLSocketFactoryPort = 1, sp }},
		{"socketFactory.port unused without a proxy", false, func(s *Settings, sp int) { s.Port, s.SocketFactoryPort = sp, 1 }},
		{"ssl.socketFactory.port unused without ssl.enable", false, func(s *Settings, sp int) { s.Port, s.SSLSocketFactoryPort = sp, 1 }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ehlo := step{Expect: "EHLO client.test", Reply: ehloReply("SIZE")}
			fs := startFakeTLS(t, &tls.Config{Certificates: []tls.Certificate{p.good}}, tc.tls, "220 fake", ehlo)
			s := fs.settings()
			s.SSLEnable, s.TLSCAFile = tc.tls, p.caFile
			tc.set(s, fs.port())
			c, err := dialFake(t, fs, s)
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if c.RemoteAddr() != fs.ln.Addr().String() || (c.TLSVersion() != "") != tc.tls {
				t.Fatalf("connected to %s (TLS %q)", c.RemoteAddr(), c.TLSVersion())
			}
			fs.finish(c)
		})
	}
}

// TestProxyFallback: socketFactory.fallback = true lets a route whose
// HTTP or SOCKS proxy cannot be reached connect directly; false reports the
// proxy failure (docs/configuration.md "Every key").
func TestProxyFallback(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadProxy := ln.Addr().String()
	ln.Close() // nothing listens there now
	cases := []struct {
		name     string
		set      func(*Settings)
		fallback bool
	}{
		{"http proxy down, fallback", func(s *Settings) { s.ProxyHost = deadProxy }, true},
		{"socks proxy down, fallback", func(s *Settings) { s.SocksHost = deadProxy }, true},
		{"http proxy down, no fallback", func(s *Settings) { s.ProxyHost = deadProxy }, false},
		{"socks proxy down, no fallback", func(s *Settings) { s.SocksHost = deadProxy }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var script []step
			if tc.fallback {
				script = []step{{Expect: "EHLO client.test", Reply: ehloReply("SIZE")}}
			}
			fs := startFake(t, "220 fake", script...)
			s := fs.settings()
			s.SocketFactoryFallback = tc.fallback
			tc.set(s)
			c, err := dialFake(t, fs, s)
			if tc.fallback {
				if err != nil {
					t.Fatalf("fallback dial: %v", err)
				}
				fs.finish(c)
				return
			}
			var ce *ConnectError
			if !errors.As(err, &ce) || !strings.Contains(err.Error(), deadProxy) {
				t.Fatalf("err = %v, want a ConnectError naming the proxy %s", err, deadProxy)
			}
			fs.ln.Close()
		})
	}
}

func TestConnectTimeout(t *testing.T) {
	s := &Settings{Name: "t", Host: "127.0.0.1", Port: 25, ConnectionTimeout: intp(300)}
	start := time.Now()
	_, err := Dial(context.Background(), s, DialOptions{Dialer: func(ctx context.Context, n, a string) (net.Conn, error) {
		<-ctx.Done() // a black-holed SYN
		return nil, ctx.Err()
	}})
	var ce *ConnectError
	if !errors.As(err, &ce) || ce.Timeout != 300*time.Millisecond || !strings.Contains(err.Error(), "timeout 300ms") {
		t.Fatalf("err = %v", err)
	}
	if el := time.Since(start); el < 250*time.Millisecond || el > 3*time.Second {
		t.Fatalf("took %v", el)
	}
}

func TestLocalBind(t *testing.T) {
	free := func() int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().(*net.TCPAddr).Port
	}
	cases := []struct {
		name   string
		addr   string
		port   int
		wantIP string
	}{
		{"localaddress", "127.0.0.2", 0, "127.0.0.2"},
		{"localaddress and localport", "127.0.0.2", free(), "127.0.0.2"},
		{"localport alone binds the wildcard (mailq, unlike JavaMail)", "", free(), "127.0.0.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fs := startFake(t, "220 fake", step{Expect: "EHLO *", Reply: ehloReply("SIZE")})
			s := fs.settings()
			s.Localhost = ""
			s.LocalAddress, s.LocalPort = tc.addr, tc.port
			c, err := dialFake(t, fs, s)
			if err != nil {
				t.Fatal(err)
			}
			lines := fs.finish(c)
			peer := fs.peer.(*net.TCPAddr)
			if peer.IP.String() != tc.wantIP || tc.port != 0 && peer.Port != tc.port {
				t.Fatalf("peer %v", peer)
			}
			if !strings.HasPrefix(lines[0], "EHLO ") || strings.Contains(lines[0], "EHLO 127.") {
				t.Fatalf("EHLO name must be an FQDN or a bracketed literal: %q", lines[0])
			}
		})
	}
}

// TestConnectRefusedNamesNoPhantomLocalAddress: without localaddress the
// error must not read "dial tcp <nil>->…" (operators see it in show/logs).
func TestConnectRefusedNamesNoPhantomLocalAddress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens there now
	_, err = Dial(context.Background(), &Settings{Name: "t", Host: "127.0.0.1", Port: port}, DialOptions{})
	var ce *ConnectError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a ConnectError", err)
	}
	if strings.Contains(err.Error(), "<nil>") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("err = %q: want a refused connection without a <nil> local address", err)
	}
}
