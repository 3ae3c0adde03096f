package smtpproto

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	cases := []struct {
		name string
		set  func(*Settings)
		key  string // "" = valid
	}{
		{"minimal", func(s *Settings) {}, ""},
		{"port too big", func(s *Settings) { s.Port = 70000 }, "port"},
		{"port negative", func(s *Settings) { s.Port = -1 }, "port"},
		{"ssl.enable with starttls.required", func(s *Settings) { s.SSLEnable, s.StartTLSRequired = true, true }, "starttls.required"},
		{"auth without password", func(s *Settings) { s.Auth = boolp(true) }, "auth"},
		{"auth with password_env", func(s *Settings) { s.Auth = boolp(true); s.PasswordEnv = "X" }, ""},
		{"socketFactory.class", func(s *Settings) { s.SocketFactoryClass = "com.x.F" }, "socketFactory.class"},
		{"ssl.socketFactory.class names tls keys", func(s *Settings) { s.SSLSocketFactoryClass = "com.x.F" }, "tls.ca_file"},
		{"mailextension with CRLF", func(s *Settings) { s.MailExtension = "X\r\nRSET" }, "mailextension"},
		{"mailextension with NUL", func(s *Settings) { s.MailExtension = "X\x00" }, "mailextension"},
		{"unknown protocol", func(s *Settings) { s.SSLProtocols = "SSLv3" }, "ssl.protocols"},
		{"known protocols", func(s *Settings) { s.SSLProtocols = "TLSv1.2 TLSv1.3" }, ""},
		{"unknown cipher", func(s *Settings) { s.SSLCipherSuites = "TLS_FOO" }, "ssl.ciphersuites"},
		{"known cipher", func(s *Settings) { s.SSLCipherSuites = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" }, ""},
		{"zero timeout", func(s *Settings) { s.Timeout = intp(0) }, "timeout"},
		{"bad notify", func(s *Settings) { s.DSNNotify = "SOMETIMES" }, "dsn.notify"},
		{"NEVER combined", func(s *Settings) { s.DSNNotify = "NEVER,FAILURE" }, "dsn.notify"},
		{"bad ret", func(s *Settings) { s.DSNRet = "ALL" }, "dsn.ret"},
		{"unknown mechanism", func(s *Settings) { s.AuthMechanisms = "LOGIN GSSAPI" }, "auth.mechanisms"},
		{"cert without key", func(s *Settings) { s.TLSCertFile = "/x" }, "tls.cert_file"},
		{"missing ca file", func(s *Settings) { s.TLSCAFile = "/nonexistent/ca.pem" }, "tls.ca_file"},
		{"proxy user without password", func(s *Settings) { s.ProxyUser = "u" }, "proxy.user"},
		{"two password sources", func(s *Settings) { s.Password, s.PasswordEnv = "p", "E" }, "password_file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &Settings{Name: "relay", Host: "127.0.0.1"}
			tc.set(s)
			err := s.Validate()
			if tc.key == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), `route "relay"`) || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("err = %v, want one naming route relay and %q", err, tc.key)
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	s := &Settings{}
	if h, p := s.Endpoint(); h != "localhost" || p != 25 {
		t.Fatalf("endpoint %s:%d", h, p)
	}
	s.SSLEnable = true
	if _, p := s.Endpoint(); p != 465 {
		t.Fatalf("ssl port %d", p)
	}
	s.Port = 2525
	if _, p := s.Endpoint(); p != 2525 {
		t.Fatalf("port %d", p)
	}
	c, r, w := s.Timeouts()
	if c != 30*time.Second || r != 300*time.Second || w != 300*time.Second {
		t.Fatalf("timeouts %v %v %v", c, r, w)
	}
	s.Timeout = intp(1500)
	if _, r, _ := s.Timeouts(); r != 1500*time.Millisecond {
		t.Fatalf("timeout %v", r)
	}
	for ip, want := range map[string]string{"127.0.0.1": "[127.0.0.1]", "::1": "[IPv6:::1]"} {
		if got := addressLiteral(net.ParseIP(ip)); got != want {
			t.Errorf("literal(%s) = %s", ip, got)
		}
	}
	if got := (&Settings{Localhost: "client.test"}).EHLOName("mq.example.test", nil); got != "client.test" {
		t.Errorf("EHLOName = %s", got)
	}
	if got := (&Settings{}).EHLOName("", &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}); got != "[127.0.0.1]" && !strings.Contains(got, ".") {
		t.Errorf("EHLOName = %s, want FQDN or literal", got)
	}
}

// TestEHLONameOrder: route localhost, then mailq's hostname (when it is a
// domain), then the machine's name (when it has a dot), then the address
// literal of the local end. The NTLM workstation follows the EHLO name.
func TestEHLONameOrder(t *testing.T) {
	local := &net.TCPAddr{IP: net.ParseIP("127.0.0.1"), Port: 4000}
	machine, _ := os.Hostname()
	fallback := "[127.0.0.1]"
	if isFQDN(machine) {
		fallback = machine
	}
	cases := []struct {
		localhost, hostname, want string
	}{
		{"client.test", "mq.example.test", "client.test"},
		{"", "mq.example.test", "mq.example.test"},
		{"", "bare", fallback},
		{"", "", fallback},
		{"", "192.0.2.1", fallback},
	}
	for _, tc := range cases {
		if got := (&Settings{Localhost: tc.localhost}).EHLOName(tc.hostname, local); got != tc.want {
			t.Errorf("EHLOName(localhost %q, hostname %q) = %q, want %q", tc.localhost, tc.hostname, got, tc.want)
		}
	}
	if ws := newNTLMMech(&Settings{}, credentials{User: "u", Password: "p", ehloName: "mq.example.test"}).workstation; ws != "mq" {
		t.Errorf("NTLM workstation = %q, want mq (the EHLO name's first label)", ws)
	}
	if ws := newNTLMMech(&Settings{}, credentials{User: "u", Password: "p", ehloName: "[127.0.0.1]"}).workstation; strings.HasPrefix(ws, "[") {
		t.Errorf("NTLM workstation = %q from an address literal", ws)
	}
}
