package delivery

import (
	"strings"
	"testing"

	"mailq/queue"
)

// TestBounceReturnsWhatRETAsks: RET=FULL (the message's own, or the
// route's dsn.ret) returns the whole original as message/rfc822; otherwise
// only its headers as text/rfc822-headers. ENVID is carried into the report.
func TestBounceReturnsWhatRETAsks(t *testing.T) {
	cases := []struct {
		name, ret, routeRet string
		wantCT              string
		wantBody            bool
	}{
		{"default headers", "", "", "text/rfc822-headers", false},
		{"message asks FULL", "FULL", "", "message/rfc822", true},
		{"route asks FULL", "", "FULL", "message/rfc822", true},
		{"message HDRS beats route FULL", "HDRS", "FULL", "text/rfc822-headers", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := newFakeServer(t)
			route := testRoute("fake", srv.port())
			route.Settings.DSNRet = tc.routeRet
			h := newHarness(t, []Route{route}, nil)
			id, err := h.store.Enqueue(queue.Envelope{Sender: "sender@client.test", Ret: tc.ret, EnvID: "env-42",
				Recipients: []queue.RecipientSpec{{Address: "r550-a@fake.test", ORCPT: "rfc822;orig@fake.test"}}},
				strings.NewReader(testBody("sender@client.test", "test message")))
			if err != nil {
				t.Fatal(err)
			}
			h.start()
			h.settled(t, id, 1)
			d := h.onlyDSN(t, "sender@client.test")
			checkDSN(t, d, "failed", map[string]string{"r550-a@fake.test": "5.1.1"}, "no such user")
			if d.OriginalCT != tc.wantCT {
				t.Errorf("third part is %s, want %s", d.OriginalCT, tc.wantCT)
			}
			if got := strings.Contains(d.Original, "Hello there."); got != tc.wantBody {
				t.Errorf("original body returned = %v, want %v", got, tc.wantBody)
			}
			if got := d.PerMessage.Get("Original-Envelope-Id"); got != "env-42" {
				t.Errorf("Original-Envelope-Id %q, want env-42", got)
			}
			if got := d.Per[0].Get("Original-Recipient"); !strings.Contains(got, "orig@fake.test") {
				t.Errorf("Original-Recipient %q, want orig@fake.test", got)
			}
		})
	}
}
