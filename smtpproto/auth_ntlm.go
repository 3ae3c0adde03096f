package smtpproto

// NTLM over SMTP AUTH ([MS-NLMP], [MS-SMTPNTLM]): Type 1 (NEGOTIATE) as the
// initial response, Type 2 (CHALLENGE) from the server, Type 3
// (AUTHENTICATE) in answer. Message layout follows JavaMail's NTLM engine
// (docs/javamail.md "Authentication") so that servers which accept JavaMail accept
// mailq; the crypto is in auth_ntlm_crypto.go.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
	"unicode/utf16"
)

// NTLM negotiate flags used here ([MS-NLMP] §2.2.2.5).
const (
	ntlmNegotiateUnicode            = 0x00000001
	ntlmNegotiateOEM                = 0x00000002
	ntlmNegotiateNTLM               = 0x00000200
	ntlmNegotiateDomainSupplied     = 0x00001000
	ntlmNegotiateWorkstationSupplie = 0x00002000
	ntlmNegotiateAlwaysSign         = 0x00008000
	ntlmNegotiateExtendedSecurity   = 0x00080000
	ntlmNegotiateTargetInfo         = 0x00800000

	// ntlmType1BaseFlags is JavaMail's fixed Type 1 flag set (0xA203).
	ntlmType1BaseFlags = ntlmNegotiateUnicode | ntlmNegotiateOEM | ntlmNegotiateNTLM |
		ntlmNegotiateWorkstationSupplie | ntlmNegotiateAlwaysSign
	// ntlmType3BaseFlags is JavaMail's Type 3 flag set (0x8201).
	ntlmType3BaseFlags = ntlmNegotiateUnicode | ntlmNegotiateNTLM | ntlmNegotiateAlwaysSign
)

var ntlmSignature = []byte("NTLMSSP\x00")

type ntlmMech struct {
	user, password string
	domain         string // from "DOMAIN\user" (upper-cased) or auth.ntlm.domain
	workstation    string // local host name up to the first '.'
	extraFlags     uint32 // auth.ntlm.flags
	v2             bool   // auth.ntlm.v2 (default true)

	// Injected by tests for known-answer checks; zero = random / now.
	clientChallenge []byte
	now             func() time.Time

	answered bool
}

// newNTLMMech splits "DOMAIN\user" (the domain part wins over
// auth.ntlm.domain, as in JavaMail) and derives the workstation name.
func newNTLMMech(s *Settings, c credentials) *ntlmMech {
	m := &ntlmMech{
		user:        c.User,
		password:    c.Password,
		domain:      s.NTLMDomain,
		workstation: ntlmWorkstation(cmp.Or(s.Localhost, c.ehloName)),
		extraFlags:  uint32(s.NTLMFlags),
		v2:          s.NTLMv2 == nil || *s.NTLMv2,
	}
	if d, u, ok := strings.Cut(c.User, `\`); ok {
		m.domain, m.user = strings.ToUpper(d), u
	}
	return m
}

// ntlmWorkstation is the EHLO name (Settings.EHLOName's order: localhost,
// then mailq's hostname, then the machine's name) truncated at the first
// '.', as JavaMail does. An address literal is no workstation name: the
// machine's own name stands in.
func ntlmWorkstation(ehlo string) string {
	h := ehlo
	if h == "" || strings.HasPrefix(h, "[") {
		h, _ = os.Hostname()
	}
	h, _, _ = strings.Cut(h, ".")
	return h
}

func (m *ntlmMech) Name() string { return mechNTLM }

// Start returns the Type 1 message: 32-byte header, then the workstation
// and domain in OEM (ISO 8859-1) bytes.
func (m *ntlmMech) Start() ([]byte, error) {
	flags := uint32(ntlmType1BaseFlags) | m.extraFlags
	if m.domain != "" {
		flags |= ntlmNegotiateDomainSupplied
	}
	if m.v2 {
		flags |= ntlmNegotiateExtendedSecurity
	}
	host, domain := latin1Bytes(m.workstation), latin1Bytes(m.domain)
	if len(host)+len(domain) > 0xFFFF {
		return nil, errors.New("NTLM: workstation or domain name too long")
	}
	msg := make([]byte, 32, 32+len(host)+len(domain))
	copy(msg, ntlmSignature)
	binary.LittleEndian.PutUint32(msg[8:], 1)
	binary.LittleEndian.PutUint32(msg[12:], flags)
	putSecBuf(msg[16:], len(domain), 32+len(host))
	putSecBuf(msg[24:], len(host), 32)
	msg = append(msg, host...)
	msg = append(msg, domain...)
	return msg, nil
}

// Next answers the Type 2 challenge with a Type 3 message.
func (m *ntlmMech) Next(challenge []byte) ([]byte, error) {
	if m.answered {
		return nil, fmt.Errorf("NTLM: challenge after the Type 3 message: %w", errUnexpectedChallenge)
	}
	m.answered = true
	ch, err := parseNTLMChallenge(challenge)
	if err != nil {
		return nil, err
	}
	return m.authenticate(ch)
}

// ntlmChallenge is the part of a Type 2 message the client uses.
type ntlmChallenge struct {
	Flags      uint32
	Challenge  [8]byte
	TargetInfo []byte
}

// parseNTLMChallenge decodes a Type 2 message ([MS-NLMP] §2.2.1.2). Every
// offset is bounds-checked: the bytes come from the network.
func parseNTLMChallenge(b []byte) (ntlmChallenge, error) {
	var ch ntlmChallenge
	if len(b) < 32 || !bytes.Equal(b[:8], ntlmSignature) {
		return ch, errors.New("NTLM: server challenge is not an NTLMSSP message")
	}
	if t := binary.LittleEndian.Uint32(b[8:]); t != 2 {
		return ch, fmt.Errorf("NTLM: server sent message type %d, want 2 (CHALLENGE)", t)
	}
	ch.Flags = binary.LittleEndian.Uint32(b[20:])
	copy(ch.Challenge[:], b[24:32])
	if ch.Flags&ntlmNegotiateTargetInfo != 0 && len(b) >= 48 {
		n := int(binary.LittleEndian.Uint16(b[40:]))
		off := int64(binary.LittleEndian.Uint32(b[44:]))
		if off < 0 || off+int64(n) > int64(len(b)) {
			return ch, errors.New("NTLM: server challenge's target info lies outside the message")
		}
		ch.TargetInfo = append([]byte(nil), b[off:off+int64(n)]...)
	}
	return ch, nil
}

// authenticate builds the Type 3 message: 64-byte header, then domain,
// user and workstation in UTF-16LE, then the LM and NT responses.
//
// NTLMv2 is used when auth.ntlm.v2 allows it and the server either echoes
// extended session security (JavaMail's test) or sends target info (which
// only an NTLMv2-capable server does); otherwise NTLMv1.
func (m *ntlmMech) authenticate(ch ntlmChallenge) ([]byte, error) {
	flags := uint32(ntlmType3BaseFlags)
	var lm, nt []byte
	if m.v2 && (ch.Flags&ntlmNegotiateExtendedSecurity != 0 || len(ch.TargetInfo) > 0) {
		flags |= ntlmNegotiateExtendedSecurity
		cc := m.clientChallenge
		if cc == nil {
			cc = make([]byte, 8)
			if _, err := randRead(cc); err != nil {
				return nil, fmt.Errorf("NTLM: generating client challenge: %w", err)
			}
		}
		now := time.Now
		if m.now != nil {
			now = m.now
		}
		key := ntowfv2(m.password, m.user, m.domain)
		lm = lmv2Response(key, ch.Challenge[:], cc)
		nt = ntlmv2Response(key, ch.Challenge[:], cc, ntlmTimestamp(now()), ch.TargetInfo)
	} else {
		lm = desl(lmowfv1(m.password), ch.Challenge[:])
		nt = desl(ntowfv1(m.password), ch.Challenge[:])
	}
	domain, user, host := utf16LE(m.domain), utf16LE(m.user), utf16LE(m.workstation)
	for _, f := range [][]byte{domain, user, host, lm, nt} {
		if len(f) > 0xFFFF {
			return nil, errors.New("NTLM: a field of the Type 3 message exceeds 65535 bytes")
		}
	}
	total := 64 + len(domain) + len(user) + len(host) + len(lm) + len(nt)
	msg := make([]byte, 64, total)
	copy(msg, ntlmSignature)
	binary.LittleEndian.PutUint32(msg[8:], 3)
	off := 64
	putSecBuf(msg[28:], len(domain), off)
	off += len(domain)
	putSecBuf(msg[36:], len(user), off)
	off += len(user)
	putSecBuf(msg[44:], len(host), off)
	off += len(host)
	putSecBuf(msg[12:], len(lm), off)
	off += len(lm)
	putSecBuf(msg[20:], len(nt), off)
	putSecBuf(msg[52:], 0, total) // no session key
	binary.LittleEndian.PutUint32(msg[60:], flags)
	for _, f := range [][]byte{domain, user, host, lm, nt} {
		msg = append(msg, f...)
	}
	return msg, nil
}

// putSecBuf writes an NTLM security buffer: length, allocated length (the
// same) and offset, little-endian.
func putSecBuf(b []byte, n, off int) {
	binary.LittleEndian.PutUint16(b[0:], uint16(n))
	binary.LittleEndian.PutUint16(b[2:], uint16(n))
	binary.LittleEndian.PutUint32(b[4:], uint32(off))
}

// ntlmTimestamp is t in 100-ns ticks since 1601-01-01 UTC ([MS-DTYP] FILETIME).
func ntlmTimestamp(t time.Time) uint64 {
	const epochDelta = 116444736000000000 // 1601 → 1970 in 100 ns ticks
	// Not t.UnixNano(): it is undefined before 1678.
	return uint64(t.Unix()*10_000_000 + int64(t.Nanosecond()/100) + epochDelta)
}

func utf16LE(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, v := range u {
		binary.LittleEndian.PutUint16(b[2*i:], v)
	}
	return b
}

// latin1Bytes encodes s as ISO 8859-1, replacing characters outside it
// with '?' (the OEM fields of Type 1 cannot carry them).
func latin1Bytes(s string) []byte {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xFF {
			r = '?'
		}
		b = append(b, byte(r))
	}
	return b
}
