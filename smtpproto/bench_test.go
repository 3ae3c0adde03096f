package smtpproto

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"
)

// startSink is a minimal in-process SMTP sink that accepts everything. It
// flushes its replies only when it has no more client input buffered, so
// a pipelining client gets one reply flight per command flight.
func startSink(tb testing.TB, pipelining bool) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go serveSink(nc, pipelining)
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

func serveSink(nc net.Conn, pipelining bool) {
	defer nc.Close()
	br, bw := bufio.NewReader(nc), bufio.NewWriter(nc)
	reply := func(s string) {
		bw.WriteString(s)
		if br.Buffered() == 0 {
			bw.Flush()
		}
	}
	reply("220 sink\r\n")
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(strings.SplitN(strings.TrimSpace(l), " ", 2)[0]); cmd {
		case "EHLO":
			if pipelining {
				reply("250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
			} else {
				reply("250-sink\r\n250 8BITMIME\r\n")
			}
		case "DATA":
			reply("354 go\r\n")
			bw.Flush()
			for {
				l, err := br.ReadSlice('\n')
				if err != nil {
					return
				}
				if string(l) == ".\r\n" {
					break
				}
			}
			reply("250 ok\r\n")
		case "QUIT":
			reply("221 bye\r\n")
			bw.Flush()
			return
		default:
			reply("250 ok\r\n")
		}
	}
}

// BenchmarkSendReusedConnection: messages per second over one reused
// connection (4 KiB body, 1 recipient), with and without PIPELINING.
func BenchmarkSendReusedConnection(b *testing.B) {
	body := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 78)+"\r\n", 51)
	for _, pl := range []bool{false, true} {
		name := "no-pipelining"
		if pl {
			name = "pipelining"
		}
		b.Run(name, func(b *testing.B) {
			port := startSink(b, pl)
			s := &Settings{Name: "bench", Host: "127.0.0.1", Port: port, Localhost: "client.test"}
			c, err := Dial(context.Background(), s, DialOptions{})
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			env := env1("a@x.test", "b@y.test")
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Send(context.Background(), env, strings.NewReader(body)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
