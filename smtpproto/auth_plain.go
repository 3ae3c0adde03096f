package smtpproto

// PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login), the two
// mechanisms that send the password itself.

import (
	"fmt"
)

// plainMech sends authzid NUL user NUL password as the initial response.
// mailq's authzid defaults to empty (sasl.authorizationid), unlike
// JavaMail, which repeats the user name (docs/javamail.md "Authentication").
type plainMech struct {
	authzID, user, password string
}

func (m *plainMech) Name() string { return mechPLAIN }

func (m *plainMech) Start() ([]byte, error) {
	ir := make([]byte, 0, len(m.authzID)+len(m.user)+len(m.password)+2)
	ir = append(ir, m.authzID...)
	ir = append(ir, 0)
	ir = append(ir, m.user...)
	ir = append(ir, 0)
	ir = append(ir, m.password...)
	return ir, nil
}

// Next fails: the whole exchange is the initial response, so a 334 after it
// means the server refused it in a non-standard way (docs/javamail.md
// §2.9: nothing is sent in answer).
func (m *plainMech) Next([]byte) ([]byte, error) {
	return nil, fmt.Errorf("PLAIN: server asked for more after the initial response: %w", errUnexpectedChallenge)
}

// loginMech answers the first challenge with the user name and the second
// with the password. The challenge text ("Username:", "Password:") is never
// inspected because servers localise it.
type loginMech struct {
	user, password string
	step           int
}

func (m *loginMech) Name() string { return mechLOGIN }

func (m *loginMech) Start() ([]byte, error) { return nil, nil }

func (m *loginMech) Next([]byte) ([]byte, error) {
	m.step++
	switch m.step {
	case 1:
		return []byte(m.user), nil
	case 2:
		return []byte(m.password), nil
	default:
		return nil, fmt.Errorf("LOGIN: third challenge after user name and password: %w", errUnexpectedChallenge)
	}
}
