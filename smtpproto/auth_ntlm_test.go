package smtpproto

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatalf("bad hex in test: %v", err)
	}
	return b
}

// [MS-NLMP] §4.2.2.3 and §4.2.4.3: the example CHALLENGE messages.
const (
	msnlmpV1Challenge = "4e544c4d53535000020000000c000c003800000033820 2e20123456789abcdef" +
		"06007017000000 0f530065007200760065007200"
	msnlmpV2Challenge = "4e544c4d53535000020000000300 0c003800000033828ae20123456789abcdef" +
		"0000000000000000240024004400000006007017000000 0f5300650072007600650072000200 0c00" +
		"44006f006d00610069006e0001000c005300650072007600650072000000 0000"
	// §4.2.4.1.3 temp: the NTLMv2 client challenge structure with the AV pairs.
	msnlmpV2Temp = "0101000000000000 0000000000000000 aaaaaaaaaaaaaaaa 00000000" +
		"02000c0044006f006d00610069006e00 01000c00530065007200760065007200 00000000 00000000"
)

// type3Field returns the payload of the security buffer at off.
func type3Field(t *testing.T, msg []byte, off int) []byte {
	t.Helper()
	n := int(binary.LittleEndian.Uint16(msg[off:]))
	o := int(binary.LittleEndian.Uint32(msg[off+4:]))
	if o+n > len(msg) {
		t.Fatalf("security buffer at %d (len %d off %d) outside %d-byte message", off, n, o, len(msg))
	}
	return msg[o : o+n]
}

func TestNTLMKnownAnswersMSNLMP(t *testing.T) {
	clientChallenge := mustHex(t, "aaaaaaaaaaaaaaaa")
	tests := []struct {
		name           string
		challenge      string
		wantLM, wantNT string
		wantFlags      uint32
	}{
		{
			name:      "NTLMv1 §4.2.2 (server without extended security or target info)",
			challenge: msnlmpV1Challenge,
			wantLM:    "98def7b87f88aa5dafe2df779688a172def11c7d5ccdef13",
			wantNT:    "67c43011f30298a2ad35ece64f16331c44bdbed927841f94",
			wantFlags: 0x00008201,
		},
		{
			name:      "NTLMv2 §4.2.4",
			challenge: msnlmpV2Challenge,
			wantLM:    "86c35097ac9cec102554764a57cccc19aaaaaaaaaaaaaaaa",
			wantNT:    "68cd0ab851e51c96aabc927bebef6a1c" + msnlmpV2Temp,
			wantFlags: 0x00088201,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &ntlmMech{user: "User", password: "Password", domain: "Domain", workstation: "COMPUTER", v2: true,
				clientChallenge: clientChallenge, now: func() time.Time { return time.Unix(-11644473600, 0) }} // FILETIME 0
			msg, err := m.Next(mustHex(t, tt.challenge))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(msg[:12], []byte("NTLMSSP\x00\x03\x00\x00\x00")) {
				t.Fatalf("header % x, want NTLMSSP type 3", msg[:12])
			}
			if got := hex.EncodeToString(type3Field(t, msg, 12)); got != tt.wantLM {
				t.Errorf("LM response\n got %s\nwant %s", got, tt.wantLM)
			}
			if got, want := hex.EncodeToString(type3Field(t, msg, 20)), strings.ReplaceAll(tt.wantNT, " ", ""); got != want {
				t.Errorf("NT response\n got %s\nwant %s", got, want)
			}
			for off, want := range map[int]string{28: "Domain", 36: "User", 44: "COMPUTER"} {
				if got := type3Field(t, msg, off); !bytes.Equal(got, utf16LE(want)) {
					t.Errorf("field at %d = % x, want UTF-16LE %q", off, got, want)
				}
			}
			if got := binary.LittleEndian.Uint32(msg[60:]); got != tt.wantFlags {
				t.Errorf("Type 3 flags %#x, want %#x", got, tt.wantFlags)
			}
			if sk := type3Field(t, msg, 52); len(sk) != 0 || int(binary.LittleEndian.Uint32(msg[56:])) != len(msg) {
				t.Errorf("session key buffer must be empty at the end of the message")
			}
		})
	}
}

func TestNTLMOneWayFunctionsMSNLMP(t *testing.T) {
	tests := []struct{ name, got, want string }{
		{"NTOWFv1 §4.2.2.1.2", hex.EncodeToString(ntowfv1("Password")), "a4f49c406510bdcab6824ee7c30fd852"},
		{"LMOWFv1 §4.2.2.1.1", hex.EncodeToString(lmowfv1("Password")), "e52cac67419a9a224a3b108f3fa6cb6d"},
		{"NTOWFv2 §4.2.4.1.1", hex.EncodeToString(ntowfv2("Password", "User", "Domain")), "0c868a403bfd7a93a3001ef22ef02e3f"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %s, want %s", tt.name, tt.got, tt.want)
		}
	}
}

func TestNTLMType1(t *testing.T) {
	tests := []struct {
		name      string
		s         Settings
		user      string
		wantB64   string // exact bytes when set
		wantFlags uint32
		wantDom   string
	}{
		{name: "JavaMail example: host client, no domain, v2", s: Settings{Localhost: "client.example.org"},
			wantB64: "TlRMTVNTUAABAAAAA6IIAAAAAAAmAAAABgAGACAAAABjbGllbnQ=", wantFlags: 0x0008A203},
		{name: "auth.ntlm.domain CORP sets 0x1000", s: Settings{Localhost: "client", NTLMDomain: "CORP"},
			wantFlags: 0x0008B203, wantDom: "CORP"},
		{name: "DOMAIN\\user overrides auth.ntlm.domain, upper-cased", s: Settings{Localhost: "client", NTLMDomain: "CORP"}, user: `sales\bob`,
			wantFlags: 0x0008B203, wantDom: "SALES"},
		{name: "auth.ntlm.flags ORed in", s: Settings{Localhost: "client", NTLMFlags: 0x20000000},
			wantFlags: 0x2008A203},
		{name: "auth.ntlm.v2=false drops 0x00080000", s: Settings{Localhost: "client", NTLMv2: authBool(false)},
			wantFlags: 0x0000A203},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user := tt.user
			if user == "" {
				user = "bob"
			}
			m := newNTLMMech(&tt.s, credentials{User: user, Password: "pw"})
			msg, err := m.Start()
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantB64 != "" {
				if got := base64.StdEncoding.EncodeToString(msg); got != tt.wantB64 {
					t.Errorf("Type 1 = %s, want %s", got, tt.wantB64)
				}
			}
			if got := binary.LittleEndian.Uint32(msg[12:]); got != tt.wantFlags {
				t.Errorf("flags %#x, want %#x", got, tt.wantFlags)
			}
			if got := string(type3Field(t, msg, 16)); got != tt.wantDom {
				t.Errorf("domain bytes %q, want %q", got, tt.wantDom)
			}
			if got := string(type3Field(t, msg, 24)); got != "client" {
				t.Errorf("workstation %q, want \"client\" (EHLO name up to the first dot)", got)
			}
		})
	}
}

func TestNTLMVersionChoice(t *testing.T) {
	challenge := func(flags uint32, targetInfo []byte) []byte {
		b := make([]byte, 48, 48+len(targetInfo))
		copy(b, "NTLMSSP\x00")
		binary.LittleEndian.PutUint32(b[8:], 2)
		binary.LittleEndian.PutUint32(b[20:], flags)
		copy(b[24:], "\x01\x23\x45\x67\x89\xab\xcd\xef")
		putSecBuf(b[40:], len(targetInfo), 48)
		return append(b, targetInfo...)
	}
	ti := []byte{0, 0, 0, 0}
	tests := []struct {
		name      string
		v2        *bool
		challenge []byte
		wantNTLen int // 24 = NTLMv1
	}{
		{"server echoes extended security", nil, challenge(ntlmNegotiateExtendedSecurity, nil), 16 + 28 + 4},
		{"server sends target info", nil, challenge(ntlmNegotiateTargetInfo, ti), 16 + 28 + 4 + 4},
		{"server without either: v1", nil, challenge(0, nil), 24},
		{"auth.ntlm.v2=false forces v1", authBool(false), challenge(ntlmNegotiateExtendedSecurity|ntlmNegotiateTargetInfo, ti), 24},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newNTLMMech(&Settings{NTLMv2: tt.v2, Localhost: "h"}, credentials{User: "u", Password: "p"})
			msg, err := m.Next(tt.challenge)
			if err != nil {
				t.Fatal(err)
			}
			if got := len(type3Field(t, msg, 20)); got != tt.wantNTLen {
				t.Errorf("NT response length %d, want %d", got, tt.wantNTLen)
			}
		})
	}
}

func TestParseNTLMChallenge(t *testing.T) {
	v2 := mustHex(t, msnlmpV2Challenge)
	tests := []struct {
		name    string
		in      []byte
		wantTI  int
		wantErr string
	}{
		{name: "MS-NLMP v2 example", in: v2, wantTI: 36},
		{name: "MS-NLMP v1 example", in: mustHex(t, msnlmpV1Challenge), wantTI: 0},
		{name: "too short", in: v2[:31], wantErr: "not an NTLMSSP"},
		{name: "bad signature", in: append([]byte("NTLMSSX\x00"), v2[8:]...), wantErr: "not an NTLMSSP"},
		{name: "type 3 instead of 2", in: append(append([]byte{}, v2[:8]...), append([]byte{3, 0, 0, 0}, v2[12:]...)...), wantErr: "type 3"},
		{name: "target info beyond end", in: v2[:60], wantErr: "outside"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ch, err := parseNTLMChallenge(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(ch.Challenge[:]) != "0123456789abcdef" || len(ch.TargetInfo) != tt.wantTI {
				t.Errorf("challenge %x, target info %d bytes; want 0123456789abcdef and %d", ch.Challenge, len(ch.TargetInfo), tt.wantTI)
			}
		})
	}
}

func TestNTLMTimestamp(t *testing.T) {
	tests := []struct {
		t    time.Time
		want uint64
	}{
		{time.Unix(-11644473600, 0), 0},
		{time.Unix(0, 0), 116444736000000000},
		{time.Unix(1, 500), 116444736010000005},
	}
	for _, tt := range tests {
		if got := ntlmTimestamp(tt.t); got != tt.want {
			t.Errorf("ntlmTimestamp(%v) = %d, want %d", tt.t, got, tt.want)
		}
	}
}

// FuzzParseNTLMChallenge: no input may panic the Type 2 parser or the Type 3
// builder behind it.
func FuzzParseNTLMChallenge(f *testing.F) {
	f.Add(mustHex(f, msnlmpV1Challenge))
	f.Add(mustHex(f, msnlmpV2Challenge))
	f.Add([]byte("NTLMSSP\x00\x02\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ch, err := parseNTLMChallenge(b)
		if err != nil {
			return
		}
		if len(ch.TargetInfo) > len(b) {
			t.Fatalf("target info longer than the message")
		}
		m := &ntlmMech{user: "u", password: "p", workstation: "w", v2: true}
		if _, err := m.authenticate(ch); err != nil {
			t.Fatalf("valid challenge rejected by Type 3 builder: %v", err)
		}
	})
}
