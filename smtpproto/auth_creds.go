package smtpproto

// This file resolves a route's secrets. Files are re-read on every call so
// that an operator (or a token refresher) can rotate a password or OAuth2
// access token without restarting mailq.

import (
	"fmt"
	"os"
	"strings"
)

// credentials are the secrets one AUTH exchange may use. They must never be
// logged.
type credentials struct {
	User        string
	Password    string
	OAuth2Token string
	// ehloName is the session's EHLO name, which NTLM's workstation name
	// follows (not a secret; set by authenticate).
	ehloName string
}

// String keeps secrets out of logs and error messages even when a
// credentials value is formatted by accident.
func (c credentials) String() string {
	return fmt.Sprintf("credentials{User:%q Password:<redacted> OAuth2Token:<redacted>}", c.User)
}

// GoString redacts like String for %#v.
func (c credentials) GoString() string { return c.String() }

// hasPasswordSource reports whether any password source (or oauth2 token file) is configured.
func hasPasswordSource(s *Settings) bool {
	return s.Password != "" || s.PasswordFile != "" || s.PasswordEnv != "" || s.OAuth2TokenFile != ""
}

// loadCredentials resolves password / password_file / password_env / oauth2.token_file (file re-read at each call, one trailing newline stripped). Error names the route and key.
// The password sources are tried in the order password, password_file,
// password_env; the first configured one wins (config validation warns
// about a literal password and about more than one source).
func loadCredentials(s *Settings) (credentials, error) {
	c := credentials{User: s.User}
	switch {
	case s.Password != "":
		c.Password = s.Password
	case s.PasswordFile != "":
		p, err := readSecretFile(s.Name, "password_file", s.PasswordFile)
		if err != nil {
			return credentials{}, err
		}
		c.Password = p
	case s.PasswordEnv != "":
		p, ok := os.LookupEnv(s.PasswordEnv)
		if !ok {
			return credentials{}, fmt.Errorf("route %q: password_env: environment variable %s is not set; export it in mailq's environment or use password_file", s.Name, s.PasswordEnv)
		}
		if p == "" {
			return credentials{}, fmt.Errorf("route %q: password_env: environment variable %s is empty", s.Name, s.PasswordEnv)
		}
		c.Password = p
	}
	if s.OAuth2TokenFile != "" {
		t, err := readSecretFile(s.Name, "oauth2.token_file", s.OAuth2TokenFile)
		if err != nil {
			return credentials{}, err
		}
		c.OAuth2Token = t
	}
	return c, nil
}

// CheckCredentials reads every secret the route's settings name, as a
// delivery would, and returns the first problem (a variable not set, a file
// missing or empty); nil when there are none or all are there. The
// secrets themselves are dropped at once.
func CheckCredentials(s *Settings) error {
	if !hasPasswordSource(s) {
		return nil
	}
	_, err := loadCredentials(s)
	return err
}

// credentialsDirVar is where systemd puts the files of LoadCredential= and
// SetCredential= (systemd.exec(5) "Credentials").
const credentialsDirVar = "CREDENTIALS_DIRECTORY"

// secretPath expands $CREDENTIALS_DIRECTORY (or ${CREDENTIALS_DIRECTORY})
// in a password_file or oauth2.token_file, so that a unit's
// LoadCredential=relay:/etc/mailq/relay.pass pairs with
// password_file = "$CREDENTIALS_DIRECTORY/relay" (docs/configuration.md
// "Secrets"). Other text is taken as it is.
func secretPath(route, key, path string) (string, error) {
	if !strings.Contains(path, "$"+credentialsDirVar) && !strings.Contains(path, "${"+credentialsDirVar+"}") {
		return path, nil
	}
	dir := os.Getenv(credentialsDirVar)
	if dir == "" {
		return "", fmt.Errorf("route %q: %s: %s names $%s, which is not set: mailq is not running under systemd with LoadCredential= (or set the variable)", route, key, path, credentialsDirVar)
	}
	path = strings.ReplaceAll(path, "${"+credentialsDirVar+"}", dir)
	return strings.ReplaceAll(path, "$"+credentialsDirVar, dir), nil
}

// readSecretFile reads a one-line secret. Exactly one trailing line ending
// ("\n" or "\r\n") is removed because editors add one; anything else is
// part of the secret.
func readSecretFile(route, key, path string) (string, error) {
	path, err := secretPath(route, key, path)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("route %q: %s: cannot read secret: %w", route, key, err)
	}
	v := string(b)
	if strings.HasSuffix(v, "\n") {
		v = strings.TrimSuffix(v, "\n")
		v = strings.TrimSuffix(v, "\r")
	}
	if v == "" {
		return "", fmt.Errorf("route %q: %s: file %s is empty; write the secret into it", route, key, path)
	}
	return v, nil
}
