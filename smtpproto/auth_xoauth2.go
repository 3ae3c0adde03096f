package smtpproto

// XOAUTH2 (Google's and Microsoft's bearer-token mechanism). The access
// token comes from oauth2.token_file, re-read at every connect so that an
// external refresher can replace it.

import "fmt"

type xoauth2Mech struct {
	user, token string
	errored     bool
}

func (m *xoauth2Mech) Name() string { return mechXOAUTH2 }

// Start returns "user=U ^A auth=Bearer T ^A ^A".
func (m *xoauth2Mech) Start() ([]byte, error) {
	return []byte("user=" + m.user + "\x01auth=Bearer " + m.token + "\x01\x01"), nil
}

// Next answers the server's 334 error challenge (a JSON status document)
// with an empty response, as the providers document, so that the server
// ends the exchange with its real 5xx reply instead of us dropping the
// connection (JavaMail closes instead; mailq gets the proper error text).
func (m *xoauth2Mech) Next(challenge []byte) ([]byte, error) {
	if m.errored {
		return nil, fmt.Errorf("XOAUTH2: second challenge after the error challenge: %w", errUnexpectedChallenge)
	}
	m.errored = true
	return []byte{}, nil
}
