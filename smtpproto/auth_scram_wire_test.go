package smtpproto

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
)

// TestSCRAMServerMustProveItself: a server that answers SCRAM's
// client-final-message with 235 directly, without the server-final-message
// carrying its signature (RFC 5802 §3, sent in a 334 per RFC 4954 §4),
// has not shown it knows the password; mailq refuses the session.
func TestSCRAMServerMustProveItself(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err.Error()
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		say := func(s string) { c.Write([]byte(s + "\r\n")) }
		read := func() string { l, _ := br.ReadString('\n'); return strings.TrimRight(l, "\r\n") }
		say("220 fake")
		read() // EHLO
		say("250-fake\r\n250 AUTH SCRAM-SHA-256")
		first := read() // AUTH SCRAM-SHA-256 <client-first>
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(first, "AUTH SCRAM-SHA-256 "))
		if err != nil {
			served <- "client-first not base64: " + first
			return
		}
		_, bare, _ := strings.Cut(string(raw), ",,")
		nonce := strings.TrimPrefix(strings.Split(bare, ",")[1], "r=")
		say("334 " + base64.StdEncoding.EncodeToString([]byte("r="+nonce+"srv,s=c2FsdA==,i=4096")))
		read()              // client-final-message
		say("235 2.7.0 ok") // no server-final-message
		served <- read()    // what the client does next
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	s := &Settings{Name: "t", Host: "127.0.0.1", Port: port, Localhost: "client.test",
		User: "alice", Password: "s3cret", AuthMechanisms: "SCRAM-SHA-256"}
	c, err := Dial(context.Background(), s, DialOptions{})
	var ae *AuthError
	if !errors.As(err, &ae) || !strings.Contains(err.Error(), "without proving") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("Dial err = %v, want an AuthError about the missing server proof", err)
	}
	if next := <-served; strings.HasPrefix(next, "MAIL") {
		t.Fatalf("client went on to %q after an unproven 235", next)
	}
}
