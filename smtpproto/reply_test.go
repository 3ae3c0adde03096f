package smtpproto

import (
	"bufio"
	"slices"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want Reply
		err  bool
	}{
		{"single", "250 ok\r\n", Reply{Code: 250, Text: "ok"}, false},
		{"bare LF", "250 ok\n", Reply{Code: 250, Text: "ok"}, false},
		{"code only", "250\r\n", Reply{Code: 250}, false},
		{"multiline", "250-a\r\n250-b\r\n250 c\r\n", Reply{Code: 250, Text: "a\nb\nc"}, false},
		{"enhanced", "550 5.1.1 no such user\r\n", Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}, false},
		{"enhanced repeated on continuation", "550-5.7.1 line one\r\n550 5.7.1 line two\r\n", Reply{Code: 550, Enhanced: "5.7.1", Text: "line one\nline two"}, false},
		{"enhanced class must match", "250 5.1.1 odd\r\n", Reply{Code: 250, Text: "5.1.1 odd"}, false},
		{"not an enhanced code", "250 2.0 ok\r\n", Reply{Code: 250, Text: "2.0 ok"}, false},
		{"garbage", "hello\r\n", Reply{}, true},
		{"bad separator", "250xok\r\n", Reply{}, true},
		{"EOF mid reply", "250-a\r\n", Reply{}, true},
		{"empty", "", Reply{}, true},
		{"too long", "250 " + strings.Repeat("x", maxReplyLineLen+10) + "\r\n", Reply{}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := readReply(bufio.NewReader(strings.NewReader(tc.in)))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if err == nil && r.Reply != tc.want {
				t.Fatalf("got %+v, want %+v", r.Reply, tc.want)
			}
		})
	}
}

func TestParseEHLO(t *testing.T) {
	lines := []string{"mx.example.com Hello", "PIPELINING", "SIZE 35882577", "auth LOGIN PLAIN", "AUTH=LOGIN CRAM-MD5", "STARTTLS", "DSN", "8BITMIME", "SMTPUTF8", "CHUNKING", "ENHANCEDSTATUSCODES"}
	ex := parseEHLO(lines)
	for _, kw := range []string{"PIPELINING", "SIZE", "AUTH", "AUTH=LOGIN", "STARTTLS", "DSN", "8BITMIME", "SMTPUTF8", "CHUNKING", "ENHANCEDSTATUSCODES"} {
		if !ex.has(kw) {
			t.Errorf("missing %s", kw)
		}
	}
	if ex.keywords["SIZE"] != "35882577" {
		t.Errorf("SIZE = %q", ex.keywords["SIZE"])
	}
	if !slices.Equal(ex.auth, []string{"LOGIN", "PLAIN", "CRAM-MD5"}) {
		t.Errorf("auth = %q", ex.auth)
	}
	if ex := parseEHLO([]string{"x", "AUTH=LOGIN"}); !slices.Equal(ex.auth, []string{"LOGIN"}) || ex.has("AUTH") {
		t.Errorf("AUTH=LOGIN hack: %q", ex.auth)
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"250 ok\r\n", "250-a\r\n250 b\r\n", "550 5.1.1 x\r\n", "hello", "", "250-\n", "999 x\r\n", "2\r\n", "354 \r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(strings.NewReader(string(data)))
		for i := 0; i < 10; i++ {
			r, err := readReply(br)
			if err != nil {
				return
			}
			if r.Code < 100 || r.Code > 599 || len(r.Lines) == 0 || len(r.Lines) > maxReplyLines {
				t.Fatalf("bad reply %+v", r)
			}
			if r.Enhanced != "" && r.Enhanced[0] != byte('0'+r.Code/100) {
				t.Fatalf("enhanced %q with code %d", r.Enhanced, r.Code)
			}
		}
	})
}

func FuzzParseEHLO(f *testing.F) {
	f.Add("mx\nAUTH PLAIN LOGIN\nSIZE 10\nAUTH=LOGIN")
	f.Add("\n\n  \nauth=\nAUTH")
	f.Fuzz(func(t *testing.T, s string) {
		ex := parseEHLO(strings.Split(s, "\n"))
		seen := map[string]bool{}
		for _, m := range ex.auth {
			if m == "" || m != strings.ToUpper(m) || seen[m] {
				t.Fatalf("bad mechanism list %q", ex.auth)
			}
			seen[m] = true
		}
		for kw := range ex.keywords {
			if kw != strings.ToUpper(kw) {
				t.Fatalf("keyword %q not upper-case", kw)
			}
		}
	})
}
