package control

import (
	"encoding/json"
	"reflect"
	"testing"

	"mailq/queue"
)

// fillEvery sets every field of v (a struct, through reflection) to a
// value that is not its zero value, so an encoder that misses a field,
// including one added later, fails the comparison with encoding/json.
func fillEvery(v reflect.Value, s string) {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64, reflect.Int32:
		v.SetInt(7)
	case reflect.Struct:
		for i := range v.NumField() {
			fillEvery(v.Field(i), s)
		}
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fillEvery(v.Index(i), s)
		}
	default:
		panic("fillEvery: add " + v.Kind().String())
	}
}

// TestAppendEnvelopeIsJSONMarshal: the hand-written envelope encoding is
// byte for byte what encoding/json gives, for every field set, none set
// (the omitempty ones left out), and strings that need escaping.
func TestAppendEnvelopeIsJSONMarshal(t *testing.T) {
	var full queue.Envelope
	fillEvery(reflect.ValueOf(&full).Elem(), "x<&>\"\\\n\t\x01\x7f é \u2028\u2029 \xff\xfe end")
	cases := []queue.Envelope{
		{},
		{Sender: "a@example.com", Recipients: []queue.RecipientSpec{{Address: "b@example.org"}}},
		{Recipients: []queue.RecipientSpec{}},
		full,
	}
	for _, env := range cases {
		want, err := json.Marshal(env)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEnvelope(nil, env); string(got) != string(want) {
			t.Errorf("appendEnvelope(%+v)\n got %s\nwant %s", env, got, want)
		}
	}
}

// FuzzAppendJSONString: any string, valid UTF-8 or not, is escaped as
// encoding/json escapes it.
func FuzzAppendJSONString(f *testing.F) {
	f.Add("plain")
	f.Add("<a href=\"x\">&amp;</a>\u2028\x00\x1f\x7f\xff")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); string(got) != string(want) {
			t.Fatalf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	})
}
