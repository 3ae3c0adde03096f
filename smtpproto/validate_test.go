package smtpproto

import (
	"net"
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
	if got := (&Settings{Localhost: "client.test"}).EHLOName(nil); got != "client.test" {
		t.Errorf("EHLOName = %s", got)
	}
	if got := (&Settings{}).EHLOName(&net.TCPAddr{IP: net.ParseIP("127.0.0.1")}); got != "[127.0.0.1]" && !strings.Contains(got, ".") {
		t.Errorf("EHLOName = %s, want FQDN or literal", got)
	}
}
