package smtpproto

// NTLM response computations of [MS-NLMP] §3.3.1 (NTLMv1) and §3.3.2
// (NTLMv2). MD4 and single DES are what the protocol mandates, not a choice.

import (
	"crypto/des"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"strings"

	"golang.org/x/crypto/md4"
)

var randRead = rand.Read

// ntowfv1 is MD4(UNICODE(password)) ([MS-NLMP] §3.3.1).
func ntowfv1(password string) []byte {
	h := md4.New()
	h.Write(utf16LE(password))
	return h.Sum(nil)
}

// lmowfv1 is DES("KGS!@#$%") under the two 7-byte halves of the upper-cased
// password, truncated or zero-padded to 14 OEM bytes ([MS-NLMP] §3.3.1).
func lmowfv1(password string) []byte {
	p := make([]byte, 14)
	copy(p, latin1Bytes(strings.ToUpper(password)))
	magic := []byte("KGS!@#$%")
	out := make([]byte, 0, 16)
	out = append(out, desEncrypt7(p[0:7], magic)...)
	return append(out, desEncrypt7(p[7:14], magic)...)
}

// desl is DESL(K, D) of [MS-NLMP] §6: K zero-padded to 21 bytes, split in
// three 7-byte DES keys, each encrypting the 8-byte challenge D.
func desl(k, d []byte) []byte {
	key := make([]byte, 21)
	copy(key, k)
	out := make([]byte, 0, 24)
	for i := 0; i < 3; i++ {
		out = append(out, desEncrypt7(key[7*i:7*i+7], d)...)
	}
	return out
}

// desEncrypt7 encrypts one block with a 56-bit key spread over 8 bytes;
// crypto/des ignores the parity bit in each byte.
func desEncrypt7(k7, block []byte) []byte {
	k := make([]byte, 8)
	k[0] = k7[0]
	k[1] = k7[0]<<7 | k7[1]>>1
	k[2] = k7[1]<<6 | k7[2]>>2
	k[3] = k7[2]<<5 | k7[3]>>3
	k[4] = k7[3]<<4 | k7[4]>>4
	k[5] = k7[4]<<3 | k7[5]>>5
	k[6] = k7[5]<<2 | k7[6]>>6
	k[7] = k7[6] << 1
	c, err := des.NewCipher(k)
	if err != nil { // unreachable: the key is always 8 bytes
		panic(err)
	}
	out := make([]byte, 8)
	c.Encrypt(out, block)
	return out
}

// ntowfv2 is HMAC-MD5(MD4(UNICODE(password)), UNICODE(upper(user) + domain))
// ([MS-NLMP] §3.3.2).
func ntowfv2(password, user, domain string) []byte {
	return hmacMD5(ntowfv1(password), utf16LE(strings.ToUpper(user)+domain))
}

// lmv2Response is HMAC-MD5(key, server ‖ client challenge) ‖ client challenge.
func lmv2Response(key, serverChallenge, clientChallenge []byte) []byte {
	return append(hmacMD5(key, serverChallenge, clientChallenge), clientChallenge...)
}

// ntlmv2Response is NTProofStr ‖ temp, where temp is the NTLMv2 client
// challenge structure ([MS-NLMP] §2.2.2.7: version 1,1, six zero bytes,
// timestamp, client challenge, four zero bytes, AV pairs, four zero bytes)
// and NTProofStr = HMAC-MD5(key, server challenge ‖ temp).
func ntlmv2Response(key, serverChallenge, clientChallenge []byte, timestamp uint64, targetInfo []byte) []byte {
	temp := make([]byte, 0, 28+len(targetInfo)+4)
	temp = append(temp, 1, 1, 0, 0, 0, 0, 0, 0)
	temp = binary.LittleEndian.AppendUint64(temp, timestamp)
	temp = append(temp, clientChallenge...)
	temp = append(temp, 0, 0, 0, 0)
	temp = append(temp, targetInfo...)
	temp = append(temp, 0, 0, 0, 0)
	return append(hmacMD5(key, serverChallenge, temp), temp...)
}

func hmacMD5(key []byte, parts ...[]byte) []byte {
	h := hmac.New(md5.New, key)
	for _, p := range parts {
		h.Write(p)
	}
	return h.Sum(nil)
}
