package mtasts

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name, body string
		want       Policy
		wantErr    string
	}{
		{name: "enforce, CRLF", body: "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.Example.net\r\nmax_age: 86400\r\n",
			want: Policy{Mode: Enforce, MX: []string{"mail.example.com", "*.example.net"}, MaxAge: 86400}},
		{name: "testing, LF, unknown field", body: "version: STSv1\nmode: testing\nmx: mx.example.com\nmax_age: 60\nfuture: yes\n",
			want: Policy{Mode: Testing, MX: []string{"mx.example.com"}, MaxAge: 60}},
		{name: "none without mx", body: "version: STSv1\nmode: none\nmax_age: 0\n", want: Policy{Mode: None}},
		{name: "max_age capped", body: "version: STSv1\nmode: none\nmax_age: 9999999999\n", want: Policy{Mode: None, MaxAge: 31557600}},
		{name: "version not first", body: "mode: enforce\nversion: STSv1\nmx: a\nmax_age: 1\n", wantErr: "start with version"},
		{name: "bad version", body: "version: STSv2\nmode: enforce\nmx: a\nmax_age: 1\n", wantErr: "STSv2"},
		{name: "bad mode", body: "version: STSv1\nmode: strict\nmx: a\nmax_age: 1\n", wantErr: "mode"},
		{name: "no max_age", body: "version: STSv1\nmode: enforce\nmx: a\n", wantErr: "max_age"},
		{name: "bad max_age", body: "version: STSv1\nmode: enforce\nmx: a\nmax_age: -5\n", wantErr: "max_age"},
		{name: "enforce without mx", body: "version: STSv1\nmode: enforce\nmax_age: 5\n", wantErr: "at least one mx"},
		{name: "garbage line", body: "version: STSv1\nhello\n", wantErr: "key: value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.body)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Parse = %+v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestParseTXT(t *testing.T) {
	tests := []struct {
		records []string
		id      string
		ok      bool
	}{
		{[]string{"v=STSv1; id=20160831085700Z;"}, "20160831085700Z", true},
		{[]string{"v=spf1 -all", "v=STSv1;id=abc"}, "abc", true},
		{[]string{"v=STSv1; id=a", "v=STSv1; id=b"}, "", false}, // RFC 8461 §3.1: more than one → none
		{[]string{"v=STSv1;"}, "", false},
		{nil, "", false},
	}
	for _, tt := range tests {
		id, ok := ParseTXT(tt.records)
		if id != tt.id || ok != tt.ok {
			t.Errorf("ParseTXT(%q) = %q, %v; want %q, %v", tt.records, id, ok, tt.id, tt.ok)
		}
	}
}

func TestMatches(t *testing.T) {
	p := Policy{MX: []string{"mail.example.com", "*.example.net"}}
	for host, want := range map[string]bool{
		"mail.example.com": true, "MAIL.example.com.": true, "other.example.com": false,
		"mx1.example.net": true, "example.net": false, "a.b.example.net": false,
	} {
		if got := p.Matches(host); got != want {
			t.Errorf("Matches(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestCacheExpiresAndPersists(t *testing.T) {
	file := t.TempDir() + "/sts.json"
	c := OpenCache(file)
	now := time.Now()
	if err := c.Put("Example.com", Policy{ID: "1", Mode: Enforce, MX: []string{"mx.example.com"}, Expiry: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(file); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v, mode %v; want 0600 (not world-readable)", err, st.Mode())
	}
	c2 := OpenCache(file)
	p, ok := c2.Get("example.com", now)
	if !ok || p.ID != "1" || p.Mode != Enforce {
		t.Fatalf("reloaded cache: %+v %v", p, ok)
	}
	if _, ok := c2.Get("example.com", now.Add(time.Hour)); ok {
		t.Fatal("policy used past its expiry")
	}
}

func FuzzParse(f *testing.F) {
	f.Add("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 86400\r\n")
	f.Add("version: STSv1\nmode: none\nmax_age: 0\n")
	f.Fuzz(func(t *testing.T, body string) {
		p, err := Parse(body)
		if err != nil {
			return
		}
		if p.Mode != Enforce && p.Mode != Testing && p.Mode != None {
			t.Fatalf("accepted mode %q", p.Mode)
		}
		if p.Mode != None && len(p.MX) == 0 {
			t.Fatal("accepted an enforce/testing policy without mx")
		}
		if p.MaxAge < 0 || p.MaxAge > 31557600 {
			t.Fatalf("max_age %d out of range", p.MaxAge)
		}
	})
}
