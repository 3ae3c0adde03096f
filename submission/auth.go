package submission

import (
	"bufio"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// credentials is the auth_file: one "user:hash" per line; blank lines and
// lines starting with # are ignored. Hashes are bcrypt ($2a$, $2b$, $2y$) or
// argon2id in the PHC string format
// "$argon2id$v=19$m=65536,t=3,p=4$<salt b64>$<hash b64>" (unpadded base64).
type credentials struct {
	users map[string]string
}

// dummyHash is compared against when the user is unknown, so the reply
// takes as long as for a known user with a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("mailq-dummy"), bcrypt.MinCost)

func loadCredentials(path string) (*credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("auth_file: %w", err)
	}
	defer f.Close()
	c := &credentials{users: map[string]string{}}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		user, hash, ok := strings.Cut(line, ":")
		if !ok || user == "" || hash == "" {
			return nil, fmt.Errorf("auth_file %s line %d: want user:hash", path, n)
		}
		if !strings.HasPrefix(hash, "$2") && !strings.HasPrefix(hash, "$argon2id$") {
			return nil, fmt.Errorf("auth_file %s line %d (user %q): the hash must be bcrypt ($2b$…) or argon2id ($argon2id$…)", path, n, user)
		}
		if strings.HasPrefix(hash, "$argon2id$") {
			if _, err := parseArgon2id(hash); err != nil {
				return nil, fmt.Errorf("auth_file %s line %d (user %q): %w", path, n, user, err)
			}
		}
		c.users[user] = hash
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("auth_file %s: %w", path, err)
	}
	return c, nil
}

func (c *credentials) verify(user, password string) bool {
	hash, ok := c.users[user]
	if !ok {
		bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return false
	}
	if strings.HasPrefix(hash, "$argon2id$") {
		p, err := parseArgon2id(hash)
		if err != nil {
			return false
		}
		got := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.hash)))
		return subtle.ConstantTimeCompare(got, p.hash) == 1
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

type argon2Params struct {
	memory, time uint32
	threads      uint8
	salt, hash   []byte
}

func parseArgon2id(s string) (*argon2Params, error) {
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return nil, errors.New("argon2id hash must look like $argon2id$v=19$m=65536,t=3,p=4$salt$hash")
	}
	if parts[2] != "v=19" {
		return nil, fmt.Errorf("argon2id version %q is not supported (want v=19)", parts[2])
	}
	p := &argon2Params{}
	for _, kv := range strings.Split(parts[3], ",") {
		k, v, _ := strings.Cut(kv, "=")
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("argon2id parameter %q is not a number", kv)
		}
		switch k {
		case "m":
			p.memory = uint32(n)
		case "t":
			p.time = uint32(n)
		case "p":
			if n > 255 {
				return nil, fmt.Errorf("argon2id parallelism %d is too large", n)
			}
			p.threads = uint8(n)
		default:
			return nil, fmt.Errorf("unknown argon2id parameter %q", k)
		}
	}
	if p.memory == 0 || p.time == 0 || p.threads == 0 {
		return nil, errors.New("argon2id hash needs m, t and p")
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil {
		return nil, fmt.Errorf("argon2id salt: %w", err)
	}
	if p.hash, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(p.hash) == 0 {
		return nil, fmt.Errorf("argon2id hash is not base64")
	}
	return p, nil
}

// loginServer is the server side of the obsolete but widely used LOGIN
// mechanism (draft-murchison-sasl-login): "Username:" then "Password:".
type loginServer struct {
	check func(user, password string) error
	user  string
	step  int
}

func newLoginServer(check func(user, password string) error) sasl.Server {
	return &loginServer{check: check}
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if response != nil { // initial response carries the user name
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check(l.user, string(response))
	}
	return nil, false, errors.New("unexpected LOGIN response")
}
