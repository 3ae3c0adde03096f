package intake

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// FuzzParseEnvelopeFile: the parser never panics, and whatever it accepts
// and ValidateEnvelope passes round-trips through FormatEnvelopeHeader.
func FuzzParseEnvelopeFile(f *testing.F) {
	for _, seed := range []string{
		"a@example.com\nb@example.org\n\nbody",
		"\nb@example.org\n\n",
		" RET=HDRS ENVID=x+2B\nb@example.org NOTIFY=SUCCESS,DELAY ORCPT=rfc822;b+40x\n\n",
		"\"a b\"@example.com\n<c@d>\n\n",
		"a@example.com\r\nb@example.org\r\n\r\nbody",
		"a\x00\n\n",
		"",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		env, body, err := ParseEnvelopeFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		rest, _ := io.ReadAll(body)
		if err := ValidateEnvelope(&env); err != nil {
			return
		}
		again, body2, err := ParseEnvelopeFile(io.MultiReader(strings.NewReader(FormatEnvelopeHeader(env)), bytes.NewReader(rest)))
		if err != nil {
			t.Fatalf("formatted envelope of %q does not parse: %v", data, err)
		}
		if err := ValidateEnvelope(&again); err != nil {
			t.Fatalf("re-parsed envelope invalid: %v", err)
		}
		rest2, _ := io.ReadAll(body2)
		if again.Sender != env.Sender || again.EnvID != env.EnvID || again.Ret != env.Ret ||
			len(again.Recipients) != len(env.Recipients) || !bytes.Equal(rest, rest2) {
			t.Fatalf("round trip changed %+v into %+v", env, again)
		}
		for i := range env.Recipients {
			if again.Recipients[i] != env.Recipients[i] {
				t.Fatalf("recipient %d: %+v became %+v", i, env.Recipients[i], again.Recipients[i])
			}
		}
	})
}
