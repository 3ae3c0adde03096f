package policy

import "testing"

func TestParseEnhanced(t *testing.T) {
	tests := []struct {
		in   string
		want string // "" = error
	}{
		{"5.1.1", "5.1.1"},
		{"4.7.0", "4.7.0"},
		{"2.0.0", "2.0.0"},
		{"5.7.26", "5.7.26"},
		{"4.999.999", "4.999.999"},
		{"5.01.001", "5.1.1"},
		{"3.1.1", ""},
		{"55.1.1", ""},
		{"5.1", ""},
		{"5.1.1.1", ""},
		{"5.1000.1", ""},
		{"5..1", ""},
		{"5.a.1", ""},
		{" 5.1.1", ""},
		{"", ""},
		{"5.1.-1", ""},
		{"5.+1.1", ""},
	}
	for _, tt := range tests {
		c, err := ParseEnhanced(tt.in)
		if tt.want == "" {
			if err == nil {
				t.Errorf("ParseEnhanced(%q) = %v, want an error", tt.in, c)
			}
			continue
		}
		if err != nil || c.String() != tt.want {
			t.Errorf("ParseEnhanced(%q) = %v, %v; want %s", tt.in, c, err, tt.want)
		}
	}
}

func TestStatusOf(t *testing.T) {
	tests := []struct {
		r    Reply
		want string
	}{
		{Reply{Code: 550, Enhanced: "5.1.1"}, "5.1.1"},
		{Reply{Code: 550}, "5.0.0"},
		{Reply{Code: 451}, "4.0.0"},
		{Reply{Code: 250}, "2.0.0"},
		{Reply{Code: 250, Enhanced: "2.6.0"}, "2.6.0"},
		{Reply{Code: 452, Enhanced: "4.5.3"}, "4.5.3"},
		{Reply{Code: 550, Enhanced: "4.2.2"}, "5.2.2"}, // class mismatch: basic code wins
		{Reply{Code: 550, Enhanced: "garbage"}, "5.0.0"},
		{Reply{Code: 354}, "4.5.0"},
		{Reply{Code: 0}, "4.5.0"},
	}
	for _, tt := range tests {
		if got := StatusOf(tt.r); got != tt.want {
			t.Errorf("StatusOf(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestDiagnosticOf(t *testing.T) {
	tests := []struct {
		r    Reply
		want string
	}{
		{Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}, "smtp; 550 5.1.1 no such user"},
		{Reply{Code: 451, Text: "try\nlater"}, "smtp; 451 try later"},
		{Reply{Code: 554, Text: "a\r\n\x00b\tc"}, "smtp; 554 a b c"},
		{Reply{Code: 421}, "smtp; 421"},
	}
	for _, tt := range tests {
		if got := DiagnosticOf(tt.r); got != tt.want {
			t.Errorf("DiagnosticOf(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

// FuzzParseEnhanced checks that parsing never panics, that what parses is
// canonical-stable, and that StatusOf always yields a parsable code.
func FuzzParseEnhanced(f *testing.F) {
	for _, s := range []string{"5.1.1", "4.7.0", "2.0.0", "5.01.001", "9.9.9", "5..1", "", "5.1.1.1"} {
		f.Add(s, 550)
	}
	f.Fuzz(func(t *testing.T, s string, code int) {
		c, err := ParseEnhanced(s)
		if err == nil {
			again, err2 := ParseEnhanced(c.String())
			if err2 != nil || again != c {
				t.Fatalf("ParseEnhanced(%q) = %v, but its String %q reparses as %v, %v", s, c, c.String(), again, err2)
			}
		}
		st := StatusOf(Reply{Code: code, Enhanced: s})
		sc, err := ParseEnhanced(st)
		if err != nil {
			t.Fatalf("StatusOf(%d, %q) = %q, which does not parse: %v", code, s, st, err)
		}
		if cl := code / 100; (cl == 2 || cl == 4 || cl == 5) && sc.Class != cl {
			t.Fatalf("StatusOf(%d, %q) = %q: class differs from the basic code", code, s, st)
		}
	})
}
