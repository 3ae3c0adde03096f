package smtpproto

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	t.Setenv("MAILQ_TEST_PW", "from-env")
	t.Setenv("MAILQ_TEST_EMPTY", "")
	tests := []struct {
		name      string
		s         Settings
		want      credentials
		wantErr   []string // substrings of the error
		forbidden string   // must not appear in the error
	}{
		{name: "literal password", s: Settings{User: "u", Password: "lit"}, want: credentials{User: "u", Password: "lit"}},
		{name: "file with one trailing newline stripped", s: Settings{User: "u", PasswordFile: write("nl", "pw\n")}, want: credentials{User: "u", Password: "pw"}},
		{name: "file with CRLF stripped", s: Settings{PasswordFile: write("crlf", "pw\r\n")}, want: credentials{Password: "pw"}},
		{name: "only one newline stripped", s: Settings{PasswordFile: write("two", "pw\n\n")}, want: credentials{Password: "pw\n"}},
		{name: "file without newline, spaces kept", s: Settings{PasswordFile: write("sp", " pw ")}, want: credentials{Password: " pw "}},
		{name: "env", s: Settings{PasswordEnv: "MAILQ_TEST_PW"}, want: credentials{Password: "from-env"}},
		{name: "oauth2 token file", s: Settings{User: "u", OAuth2TokenFile: write("tok", "ya29.x\n")}, want: credentials{User: "u", OAuth2Token: "ya29.x"}},
		{name: "password and token", s: Settings{PasswordEnv: "MAILQ_TEST_PW", OAuth2TokenFile: write("tok2", "t")}, want: credentials{Password: "from-env", OAuth2Token: "t"}},
		{name: "nothing configured", s: Settings{User: "u"}, want: credentials{User: "u"}},
		{name: "missing password file", s: Settings{Name: "relay", PasswordFile: filepath.Join(dir, "absent")},
			wantErr: []string{`route "relay"`, "password_file", "absent"}},
		{name: "empty password file", s: Settings{Name: "relay", PasswordFile: write("empty", "\n")},
			wantErr: []string{`route "relay"`, "password_file", "empty"}},
		{name: "unset env", s: Settings{Name: "relay", PasswordEnv: "MAILQ_TEST_UNSET_XYZ"},
			wantErr: []string{`route "relay"`, "password_env", "MAILQ_TEST_UNSET_XYZ", "not set"}},
		{name: "empty env", s: Settings{Name: "relay", PasswordEnv: "MAILQ_TEST_EMPTY"},
			wantErr: []string{`route "relay"`, "password_env", "empty"}},
		{name: "missing token file", s: Settings{Name: "gmail", OAuth2TokenFile: filepath.Join(dir, "gone")},
			wantErr: []string{`route "gmail"`, "oauth2.token_file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loadCredentials(&tt.s)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("want error, got %v", got)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %#v, want %#v (secrets: %q %q)", got, tt.want, got.Password, got.OAuth2Token)
			}
		})
	}
}

func TestLoadCredentialsRereadsFiles(t *testing.T) {
	dir := t.TempDir()
	pw, tok := filepath.Join(dir, "pw"), filepath.Join(dir, "tok")
	s := &Settings{PasswordFile: pw, OAuth2TokenFile: tok}
	for _, v := range []string{"one", "two"} {
		if err := os.WriteFile(pw, []byte("pw-"+v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(tok, []byte("tok-"+v+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := loadCredentials(s)
		if err != nil {
			t.Fatal(err)
		}
		if c.Password != "pw-"+v || c.OAuth2Token != "tok-"+v {
			t.Fatalf("after rotation to %q got password %q token %q", v, c.Password, c.OAuth2Token)
		}
	}
}

func TestHasPasswordSource(t *testing.T) {
	tests := []struct {
		s    Settings
		want bool
	}{
		{Settings{}, false},
		{Settings{User: "u"}, false},
		{Settings{Password: "p"}, true},
		{Settings{PasswordFile: "/f"}, true},
		{Settings{PasswordEnv: "E"}, true},
		{Settings{OAuth2TokenFile: "/t"}, true},
	}
	for i, tt := range tests {
		if got := hasPasswordSource(&tt.s); got != tt.want {
			t.Errorf("case %d: hasPasswordSource = %v, want %v", i, got, tt.want)
		}
	}
}
