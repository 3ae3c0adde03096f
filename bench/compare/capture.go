package main

import "bytes"

// The head of one smtp-sink capture file (-d): the lines smtp-sink writes
// itself, before the message it received:
//
//	X-Client-Addr: 127.0.0.1
//	X-Client-Proto: ESMTP
//	X-Helo-Args: client.example
//	X-Mail-Args: <a@example.com> SIZE=102400
//	X-Rcpt-Args: <1x@tag.bench>          one per RCPT
//	Received: from client.example ([127.0.0.1])
//	        by host (smtp-sink) with ESMTP id 809a62e3;
//
// The Received: line is written when DATA is accepted, so every
// X-Rcpt-Args line comes before it and nothing after it is ours to read:
// the message itself (header and body) follows.
var (
	rcptArgsPrefix = []byte("X-Rcpt-Args: <")
	receivedPrefix = []byte("Received: ")
)

// captureRecipients returns the addresses (between < and >) of the
// X-Rcpt-Args lines of head, the start of a capture file, and whether head
// reaches smtp-sink's Received: line (if not, the recipients may be
// incomplete: read more of the file). It never looks past that line, so a
// message whose text contains "X-Rcpt-Args: <…>" lines counts nothing.
func captureRecipients(head []byte) (addrs [][]byte, complete bool) {
	for len(head) > 0 {
		nl := bytes.IndexByte(head, '\n')
		if nl < 0 {
			return addrs, false // a line cut off by the read: read more
		}
		line := head[:nl]
		head = head[nl+1:]
		if bytes.HasPrefix(line, receivedPrefix) {
			return addrs, true
		}
		if rest, ok := bytes.CutPrefix(line, rcptArgsPrefix); ok {
			if end := bytes.IndexByte(rest, '>'); end >= 0 {
				addrs = append(addrs, rest[:end])
			}
		}
	}
	return addrs, false
}
