package esmtp

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestXtextRoundTrip(t *testing.T) {
	cases := []struct{ in, enc string }{
		{"", ""},
		{"plain", "plain"},
		{"bob+tag@dst.test", "bob+2Btag@dst.test"},
		{"a+b=c d", "a+2Bb+3Dc+20d"},
		{"rfc822;x@y", "rfc822;x@y"},
		{"\x01\x7f\xc3\xa9", "+01+7F+C3+A9"},
	}
	for _, tc := range cases {
		if got := EncodeXtext(tc.in); got != tc.enc {
			t.Errorf("EncodeXtext(%q) = %q, want %q", tc.in, got, tc.enc)
		}
		if dec, err := DecodeXtext(tc.enc); err != nil || dec != tc.in {
			t.Errorf("DecodeXtext(%q) = %q, %v; want %q", tc.enc, dec, err, tc.in)
		}
	}
	for _, bad := range []string{"+", "+4", "+4g", "a+zz", "a+2b", "a=b", "a b", "\xc3\xa9"} {
		if _, err := DecodeXtext(bad); err == nil {
			t.Errorf("DecodeXtext(%q) accepted", bad)
		}
	}
}

func TestORCPTForms(t *testing.T) {
	cases := []struct {
		stored, param string
	}{
		{"rfc822;bob+tag@dst.test", "rfc822;bob+2Btag@dst.test"},
		{"RFC822;a=b@x", "RFC822;a+3Db@x"},
		{"rfc822;plain@x", "rfc822;plain@x"},
		{"utf-8;jörg+1@bücher.example", `utf-8;j\x{F6}rg\x{2B}1@b\x{FC}cher.example`},
		{"utf-8;用户@例子.广告", `utf-8;\x{7528}\x{6237}@\x{4F8B}\x{5B50}.\x{5E7F}\x{544A}`},
		{"bare@x", "rfc822;bare@x"}, // stored before the type was kept
	}
	for _, tc := range cases {
		o := ParseORCPT(tc.stored)
		if got := o.Param(); got != tc.param {
			t.Errorf("ParseORCPT(%q).Param() = %q, want %q", tc.stored, got, tc.param)
		}
		back, err := DecodeORCPTParam(tc.param)
		if err != nil || back != o {
			t.Errorf("DecodeORCPTParam(%q) = %+v, %v; want %+v", tc.param, back, err, o)
		}
	}
	for _, bad := range []string{"rfc822", ";x@y", "rfc822;", "rfc822;a+zz@x", `utf-8;a\x{f6}@x`, `utf-8;a\x{00F6}@x`, `utf-8;a+b@x`, "rfc822;a\xc3\xa9@x", "rf c;a@x"} {
		if _, err := DecodeORCPTParam(bad); err == nil {
			t.Errorf("DecodeORCPTParam(%q) accepted", bad)
		}
	}
}

// FuzzXtextRoundTrip: whatever bytes go in, the encoding is plain xchar
// and decodes back to the same bytes; whatever decodes re-encodes to text
// that decodes the same.
func FuzzXtextRoundTrip(f *testing.F) {
	for _, s := range []string{"", "bob+tag@x", "a=b", "+2B", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		enc := EncodeXtext(s)
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; c < '!' || c > '~' || c == '=' {
				t.Fatalf("EncodeXtext(%q) = %q contains byte 0x%02X", s, enc, c)
			}
		}
		dec, err := DecodeXtext(enc)
		if err != nil || dec != s {
			t.Fatalf("DecodeXtext(EncodeXtext(%q)) = %q, %v", s, dec, err)
		}
		// Any byte may be written as hexchar (RFC 3461 §4), so decoding
		// is not one-to-one; re-encoding what decoded must decode the same.
		if dec, err := DecodeXtext(s); err == nil {
			if again, err := DecodeXtext(EncodeXtext(dec)); err != nil || again != dec {
				t.Fatalf("DecodeXtext(EncodeXtext(DecodeXtext(%q))) = %q, %v; want %q", s, again, err, dec)
			}
		}
	})
}

// FuzzORCPTRoundTrip: a valid stored ORCPT goes to the wire form and back
// unchanged, and the wire form is 7-bit printable without spaces.
func FuzzORCPTRoundTrip(f *testing.F) {
	for _, s := range []string{"rfc822;bob+tag@x", "utf-8;jörg@bücher.example", "x-foo;a=b", `utf-8;a\b@x`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, stored string) {
		o := ParseORCPT(stored)
		if o.Validate() != nil {
			return
		}
		p := o.Param()
		for i := 0; i < len(p); i++ {
			if c := p[i]; c <= ' ' || c > '~' {
				t.Fatalf("Param of %q = %q contains byte 0x%02X", stored, p, c)
			}
		}
		back, err := DecodeORCPTParam(p)
		if err != nil || back != o {
			t.Fatalf("DecodeORCPTParam(%q) = %+v, %v; want %+v", p, back, err, o)
		}
		if !utf8.ValidString(back.Address) || strings.ContainsAny(back.Address, "\r\n") {
			t.Fatalf("decoded address %q is not clean", back.Address)
		}
	})
}
