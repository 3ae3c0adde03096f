package intake

import (
	"errors"
	"strings"
	"testing"

	"mailq/queue"
)

func TestValidateMailbox(t *testing.T) {
	long64 := strings.Repeat("a", 64)
	label63 := strings.Repeat("b", 63)
	tests := []struct {
		addr    string
		ok      bool
		utf8    bool
		because string // substring of the reason
	}{
		{"user@example.com", true, false, ""},
		{"first.last+tag@sub.example.co.uk", true, false, ""},
		{"!#$%&'*+-/=?^_`{|}~@example.com", true, false, ""},
		{`"john doe"@example.com`, true, false, ""},
		{`"a\"b"@example.com`, true, false, ""},
		{`"a@b"@example.com`, true, false, ""},
		{"user@[192.0.2.1]", true, false, ""},
		{"user@[IPv6:2001:db8::1]", true, false, ""},
		{"user@[x-tag:content]", true, false, ""},
		{"用户@例子.广告", true, true, ""},
		{"jöran@example.com", true, true, ""},
		{long64 + "@example.com", true, false, ""},
		{"u@" + label63 + ".com", true, false, ""},
		{"", false, false, "empty"},
		{"userexample.com", false, false, "no @"},
		{"user@", false, false, "empty domain"},
		{"@example.com", false, false, "empty local"},
		{"a..b@example.com", false, false, "empty atom"},
		{".a@example.com", false, false, "empty atom"},
		{"a.@example.com", false, false, "empty atom"},
		{"a b@example.com", false, false, "quoting"},
		{"a(b)@example.com", false, false, "quoting"},
		{"user@exa mple.com", false, false, "domain contains"},
		{"user@example..com", false, false, "empty label"},
		{"user@example.com.", false, false, "empty label"},
		{"user@-example.com", false, false, "hyphen"},
		{"user@example-.com", false, false, "hyphen"},
		{"user@ex_ample.com", false, false, "domain contains"},
		{"user\r\n@example.com", false, false, "CR or LF"},
		{"user@example.com\r\nRCPT TO:<x@y>", false, false, "CR or LF"},
		{"user@exa\nmple.com", false, false, "CR or LF"},
		{"us\x00er@example.com", false, false, "NUL"},
		{"us\ter@example.com", false, false, "control"},
		{"us\x7fer@example.com", false, false, "control"},
		{"us\u0085er@example.com", false, false, "control"},
		{"us\xffer@example.com", false, false, "UTF-8"},
		{`"unclosed@example.com`, false, false, "not closed"},
		{`"a"b"@example.com`, false, false, "unescaped quote"},
		{long64 + "a@example.com", false, false, "local part is 65"},
		{"u@" + label63 + "c.com", false, false, "63"},
		{"u@" + strings.Repeat(label63+".", 4) + "com", false, false, "domain is"},
		{strings.Repeat("a", 60) + "@" + strings.Repeat(label63+".", 3) + strings.Repeat("c", 10), false, false, "path"},
		{"user@[192.0.2.256]", false, false, "IPv4"},
		{"user@[IPv6:zz::1]", false, false, "IPv6"},
		{"user@[IPv6:2001:db8::1", false, false, "not closed"},
		{"user@[]", false, false, "not closed"},
	}
	for _, tt := range tests {
		utf, err := ValidateMailbox(tt.addr)
		if tt.ok {
			if err != nil {
				t.Errorf("ValidateMailbox(%q) = %v, want ok", tt.addr, err)
			} else if utf != tt.utf8 {
				t.Errorf("ValidateMailbox(%q) smtputf8 = %v, want %v", tt.addr, utf, tt.utf8)
			}
			continue
		}
		var ae *AddressError
		if !errors.As(err, &ae) {
			t.Errorf("ValidateMailbox(%q) = %v, want *AddressError", tt.addr, err)
			continue
		}
		if ae.Address != tt.addr || !strings.Contains(ae.Reason, tt.because) {
			t.Errorf("ValidateMailbox(%q) = %+v, want reason containing %q", tt.addr, ae, tt.because)
		}
		if strings.ContainsAny(ae.Error(), "\r\n\x00") {
			t.Errorf("error text for %q contains raw control characters: %q", tt.addr, ae.Error())
		}
	}
}

func TestValidateEnvelope(t *testing.T) {
	rcpt := func(addrs ...string) []queue.RecipientSpec {
		var out []queue.RecipientSpec
		for _, a := range addrs {
			out = append(out, queue.RecipientSpec{Address: a})
		}
		return out
	}
	tests := []struct {
		name     string
		env      queue.Envelope
		wantErr  string // "" = valid; else substring
		errType  string // "address", "param", "norcpt"
		smtputf8 bool
		check    func(t *testing.T, env queue.Envelope)
	}{
		{name: "plain", env: queue.Envelope{Sender: "a@example.com", Recipients: rcpt("b@example.org")}},
		{name: "null sender", env: queue.Envelope{Sender: "", Recipients: rcpt("b@example.org")}},
		{name: "utf8 recipient", env: queue.Envelope{Sender: "a@example.com", Recipients: rcpt("b@example.org", "ü@example.org")}, smtputf8: true},
		{name: "utf8 sender", env: queue.Envelope{Sender: "ä@bücher.de", Recipients: rcpt("b@example.org")}, smtputf8: true},
		{name: "no recipients", env: queue.Envelope{Sender: "a@example.com"}, wantErr: "no recipients", errType: "norcpt"},
		{name: "bad sender", env: queue.Envelope{Sender: "a@b\r\nX: y", Recipients: rcpt("b@example.org")}, wantErr: "sender", errType: "address"},
		{name: "bad second recipient", env: queue.Envelope{Sender: "a@example.com", Recipients: rcpt("b@example.org", "bad")}, wantErr: `recipient address <bad>`, errType: "address"},
		{name: "notify lower case", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", Notify: "success,delay"}}},
			check: func(t *testing.T, env queue.Envelope) {
				if env.Recipients[0].Notify != "SUCCESS,DELAY" {
					t.Errorf("notify = %q, want upper-cased", env.Recipients[0].Notify)
				}
			}},
		{name: "notify never", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", Notify: "NEVER"}}}},
		{name: "notify all three", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", Notify: "FAILURE,SUCCESS,DELAY"}}}},
		{name: "notify never plus", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", Notify: "NEVER,FAILURE"}}}, wantErr: "NEVER cannot", errType: "param"},
		{name: "notify unknown", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", Notify: "SOMETIMES"}}}, wantErr: "NOTIFY", errType: "param"},
		{name: "notify repeated", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", Notify: "DELAY,DELAY"}}}, wantErr: "repeated", errType: "param"},
		{name: "notify empty item", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", Notify: "DELAY,"}}}, wantErr: "NOTIFY", errType: "param"},
		{name: "ret hdrs", env: queue.Envelope{Ret: "hdrs", Recipients: rcpt("b@example.org")},
			check: func(t *testing.T, env queue.Envelope) {
				if env.Ret != "HDRS" {
					t.Errorf("ret = %q, want HDRS", env.Ret)
				}
			}},
		{name: "ret full", env: queue.Envelope{Ret: "FULL", Recipients: rcpt("b@example.org")}},
		{name: "ret bad", env: queue.Envelope{Ret: "BODY", Recipients: rcpt("b@example.org")}, wantErr: "RET", errType: "param"},
		{name: "envid ok", env: queue.Envelope{EnvID: "abc 123+x=y", Recipients: rcpt("b@example.org")}},
		{name: "envid control", env: queue.Envelope{EnvID: "abc\r\n", Recipients: rcpt("b@example.org")}, wantErr: "ENVID", errType: "param"},
		{name: "envid non-ascii", env: queue.Envelope{EnvID: "é", Recipients: rcpt("b@example.org")}, wantErr: "ENVID", errType: "param"},
		{name: "envid 100", env: queue.Envelope{EnvID: strings.Repeat("x", 100), Recipients: rcpt("b@example.org")}},
		{name: "envid too long encoded", env: queue.Envelope{EnvID: strings.Repeat("+", 34), Recipients: rcpt("b@example.org")}, wantErr: "at most 100", errType: "param"},
		{name: "orcpt ok", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", ORCPT: "rfc822;b@example.org"}}}},
		{name: "orcpt utf-8", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", ORCPT: "utf-8;ü@example.org"}}}},
		{name: "orcpt no type", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", ORCPT: "b@example.org"}}}, wantErr: "addr-type", errType: "param"},
		{name: "orcpt newline", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", ORCPT: "rfc822;b@e\nx"}}}, wantErr: "ORCPT", errType: "param"},
		{name: "orcpt too long", env: queue.Envelope{Recipients: []queue.RecipientSpec{{Address: "b@example.org", ORCPT: "rfc822;" + strings.Repeat("a", 500)}}}, wantErr: "at most 500", errType: "param"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := tt.env
			err := ValidateEnvelope(&env)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ValidateEnvelope = %v, want ok", err)
				}
				if env.SMTPUTF8 != tt.smtputf8 {
					t.Errorf("SMTPUTF8 = %v, want %v", env.SMTPUTF8, tt.smtputf8)
				}
				if tt.check != nil {
					tt.check(t, env)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ValidateEnvelope = %v, want error containing %q", err, tt.wantErr)
			}
			var ae *AddressError
			var pe *ParamError
			switch tt.errType {
			case "address":
				if !errors.As(err, &ae) {
					t.Errorf("error %T is not *AddressError", err)
				}
			case "param":
				if !errors.As(err, &pe) {
					t.Errorf("error %T is not *ParamError", err)
				}
			case "norcpt":
				if !errors.Is(err, ErrNoRecipients) {
					t.Errorf("error is not ErrNoRecipients")
				}
			}
		})
	}
}
