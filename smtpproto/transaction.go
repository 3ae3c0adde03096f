package smtpproto

// This file is one message's delivery over an open session: MAIL FROM,
// RCPT TO (pipelined when advertised), DATA or BDAT, the 452 split and the
// sendpartial rule of docs/delivery.md, and the JavaMail-style error
// classification (docs/javamail.md "Errors").

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"mailq/esmtp"
)

// txState collects what happened to the recipients across the
// transactions of one Send.
type txState struct {
	env       Envelope
	res       *Result
	failed    []*AddressFailedError
	dataCmd   string // DATA/BDAT/"." that failed, if any
	dataReply *Reply
}

// Send delivers one message to env's recipients. The Result always has an
// entry per recipient. The error classifies the outcome (see api.go); a
// connection-level error (*ProtocolError) leaves the Conn unusable.
func (c *Conn) Send(ctx context.Context, env Envelope, body io.Reader) (*Result, error) {
	res := &Result{Recipients: make([]RecipientResult, len(env.Recipients))}
	for i, r := range env.Recipients {
		res.Recipients[i].Address = r.Address
	}
	if c.broken || c.nc == nil {
		return res, &ProtocolError{Host: c.host, Command: "MAIL FROM", Err: errors.New("connection is closed; dial again")}
	}
	if len(env.Recipients) == 0 {
		return res, errors.New("smtpproto: envelope has no recipients")
	}
	done := c.bind(ctx)
	defer done()
	st := &txState{env: env, res: res}

	from := env.From
	if from == "<>" {
		from = ""
	}
	mail, err := c.mailCommand(env, from)
	if err != nil {
		local := Reply{Code: 553, Enhanced: "5.1.7", Text: err.Error()}
		for i := range res.Recipients {
			res.Recipients[i].Final = &local
		}
		return res, &SenderFailedError{Address: from, Reply: local}
	}
	if needsUTF8(env) && (!c.s.AllowsUTF8() || !c.ext.has("SMTPUTF8")) {
		// RFC 6531 §3.2: without SMTPUTF8 the message cannot be sent
		// unchanged, and mailq never rewrites one. allowutf8 = false
		// forbids SMTPUTF8 on this route whatever the server offers.
		text := "message needs SMTPUTF8 but " + c.host + " does not advertise it"
		if !c.s.AllowsUTF8() {
			text = "message needs SMTPUTF8 but route " + strconv.Quote(c.s.routeName()) + " has allowutf8 = false"
		}
		local := Reply{Code: 554, Enhanced: "5.6.7", Text: text}
		sf := &SendFailedError{Command: "MAIL FROM", Reply: &local}
		for i := range res.Recipients {
			res.Recipients[i].Final = &local
			sf.Invalid = append(sf.Invalid, res.Recipients[i].Address)
		}
		return res, sf
	}

	// Recipients whose command would be unsafe are refused locally and
	// left out; the others still go.
	var pending []int
	rcptCmds := make([]string, len(env.Recipients))
	for i, r := range env.Recipients {
		cmd := c.rcptCommand(r)
		if err := checkCommand(cmd); err != nil {
			local := Reply{Code: 501, Enhanced: "5.1.3", Text: err.Error()}
			res.Recipients[i].Final = &local
			st.failed = append(st.failed, &AddressFailedError{Address: r.Address, Reply: local})
			continue
		}
		rcptCmds[i] = cmd
		pending = append(pending, i)
	}

	var start int64 = -1
	if sk, ok := body.(io.Seeker); ok {
		if off, err := sk.Seek(0, io.SeekCurrent); err == nil {
			start = off
		}
	}
	bodyUsed := false
	for round := 0; len(pending) > 0 && round <= len(env.Recipients); round++ {
		if bodyUsed {
			if start < 0 {
				break // cannot resend: the deferred keep their 452 (retry later)
			}
			if _, err := body.(io.Seeker).Seek(start, io.SeekStart); err != nil {
				break
			}
		}
		next, used, err := c.transaction(st, mail, from, rcptCmds, pending, body)
		bodyUsed = bodyUsed || used
		if err != nil {
			return res, err
		}
		pending = next
	}
	return res, st.outcome()
}

// transaction runs one MAIL/RCPT/DATA exchange for the recipients idx and
// returns the recipients that still need a further transaction (452 "too
// many recipients", or the accepted ones after an RSET with sendpartial
// off) and whether body was read.
func (c *Conn) transaction(st *txState, mail, from string, rcptCmds []string, idx []int, body io.Reader) (next []int, bodyUsed bool, err error) {
	res := st.res
	pipelined := c.ext.has("PIPELINING")
	useBDAT := c.s.ChunkSize > 0 && c.ext.has("CHUNKING")
	// DATA joins the flight (RFC 2920 §3.1) when no refused recipient can
	// make it wrong: with sendpartial, or with a single recipient. With
	// sendpartial off and several recipients, one refusal means RSET and a
	// new transaction for the others, which a 354 already received would
	// not allow; then DATA waits for the RCPT replies.
	dataInFlight := pipelined && !useBDAT && (c.s.SendPartial || len(idx) == 1)

	if err := c.write(mail); err != nil {
		return nil, false, err
	}
	if pipelined {
		for _, i := range idx {
			c.write(rcptCmds[i])
		}
		if dataInFlight {
			c.write("DATA")
		}
	}
	if err := c.flush(mail); err != nil {
		return nil, false, err
	}
	mr, err := c.read(mail)
	if err != nil {
		return nil, false, err
	}
	mailOK := mr.Code/100 == 2
	if !mailOK {
		res.Steps = append(res.Steps, StepReply{Command: mail, Reply: mr.Reply})
	}

	var accepted, deferred, temp []int
	failedBefore := len(st.failed)
	replies := make(map[int]rawReply, len(idx))
	for _, i := range idx {
		if !pipelined {
			if !mailOK {
				break
			}
			if err := c.write(rcptCmds[i]); err != nil {
				return nil, false, err
			}
			if err := c.flush(rcptCmds[i]); err != nil {
				return nil, false, err
			}
		}
		r, err := c.read(rcptCmds[i])
		if err != nil {
			return nil, false, err
		}
		replies[i] = r
		if !mailOK {
			continue
		}
		rr := r.Reply
		res.Recipients[i].Rcpt = &rr
		switch {
		case r.Code/100 == 2:
			accepted = append(accepted, i)
			if c.s.ReportSuccess {
				res.Steps = append(res.Steps, StepReply{Command: rcptCmds[i], Reply: rr})
				c.log.Info().Str("queue_id", st.env.LogID).Str("recipient", st.env.Recipients[i].Address).Int("code", r.Code).Str("reply", rr.Text).Msg("recipient accepted")
			}
		case r.Code == 452:
			temp = append(temp, i)
		case r.Code/100 == 4 || r.Code/100 == 5:
			c.refuse(st, i, rcptCmds[i], rr)
		default:
			c.drop()
			return nil, false, &ProtocolError{Host: c.host, Command: rcptCmds[i], Reply: &rr, Err: errors.New("unexpected reply to RCPT TO")}
		}
	}
	// 452 after an accepted recipient means "too many recipients"
	// (RFC 5321 §4.5.3.1.10): those go in a further transaction. As the
	// only answer it is an ordinary temporary failure.
	for _, i := range temp {
		if len(accepted) > 0 {
			deferred = append(deferred, i)
			r := replies[i].Reply
			res.Recipients[i].Final = &r
		} else {
			c.refuse(st, i, rcptCmds[i], replies[i].Reply)
		}
	}

	var dataReply rawReply
	if dataInFlight {
		if dataReply, err = c.read("DATA"); err != nil {
			return nil, false, err
		}
	}
	if !mailOK {
		rep := mr.Reply
		for _, i := range idx {
			res.Recipients[i].Final = &rep
		}
		c.rset()
		return nil, false, &SenderFailedError{Address: from, Command: mail, Reply: rep}
	}
	if len(accepted) == 0 {
		if dataInFlight && dataReply.Code == 354 {
			// RFC 2920 §3.1: the server wants data; give it an empty body.
			c.write(".")
			if err := c.flush("."); err != nil {
				return nil, false, err
			}
			if _, err := c.readWithin(".", c.dataTermTimeout()); err != nil {
				return nil, false, err
			}
		}
		return nil, false, c.rset()
	}
	if len(st.failed) > failedBefore && !c.s.SendPartial {
		// sendpartial = false: the valid ones must not wait for the
		// invalid ones; send again to them alone (docs/delivery.md).
		if err := c.rset(); err != nil {
			return nil, false, err
		}
		for _, i := range accepted {
			res.Recipients[i].Rcpt = nil
		}
		return mergeOrder(accepted, deferred), false, nil
	}

	cmd := "DATA"
	var final rawReply
	switch {
	case useBDAT:
		cmd = "BDAT"
		final, err = c.sendBDAT(body)
		var ce *chunkError
		if errors.As(err, &ce) {
			cmd, final, err = ce.cmd, ce.reply, nil
			c.drop() // RFC 3030 §2: state after a refused chunk is unclear
		}
	default:
		if !dataInFlight {
			if dataReply, err = c.cmd("DATA"); err != nil {
				return nil, false, err
			}
		}
		if dataReply.Code != 354 {
			return deferred, false, c.dataFailed(st, "DATA", dataReply.Reply, accepted, true)
		}
		cmd = "."
		final, err = c.sendDATAContent(body)
	}
	if err != nil {
		c.drop()
		var pe *ProtocolError
		if !errors.As(err, &pe) {
			err = &ProtocolError{Host: c.host, Command: cmd, Err: fmt.Errorf("sending the message: %w", err)}
		}
		return nil, true, err
	}
	c.checkInSync()
	if final.Code/100 != 2 {
		return deferred, true, c.dataFailed(st, cmd, final.Reply, accepted, !c.broken)
	}
	rep := final.Reply
	for _, i := range accepted {
		res.Recipients[i].Final = &rep
		res.Recipients[i].Delivered = true
	}
	return deferred, true, nil
}

// refuse records a refused recipient.
func (c *Conn) refuse(st *txState, i int, cmd string, r Reply) {
	st.res.Recipients[i].Final = &r
	st.res.Steps = append(st.res.Steps, StepReply{Command: cmd, Reply: r})
	st.failed = append(st.failed, &AddressFailedError{Address: st.env.Recipients[i].Address, Command: cmd, Reply: r})
}

// dataFailed records a refused DATA, chunk or final dot for the accepted
// recipients, then RSETs (as JavaMail) when the session is still usable.
func (c *Conn) dataFailed(st *txState, cmd string, r Reply, accepted []int, reset bool) error {
	st.res.Steps = append(st.res.Steps, StepReply{Command: cmd, Reply: r})
	for _, i := range accepted {
		st.res.Recipients[i].Final = &r
	}
	st.dataCmd, st.dataReply = cmd, &r
	if reset {
		return c.rset()
	}
	return nil
}

// rset resets a failed transaction; a failure here breaks the connection.
func (c *Conn) rset() error {
	r, err := c.cmd("RSET")
	if err != nil {
		return err
	}
	if r.Code != 250 {
		c.drop()
		return &ProtocolError{Host: c.host, Command: "RSET", Reply: &r.Reply}
	}
	return nil
}

// outcome classifies the finished Send.
func (st *txState) outcome() error {
	sf := &SendFailedError{Command: st.dataCmd, Reply: st.dataReply, Failed: st.failed}
	for _, r := range st.res.Recipients {
		switch {
		case r.Delivered:
			sf.ValidSent = append(sf.ValidSent, r.Address)
		case r.Final != nil && r.Final.Permanent() && r.Rcpt != nil && r.Rcpt.Permanent():
			sf.Invalid = append(sf.Invalid, r.Address)
		case r.Final != nil && r.Final.Permanent() && r.Rcpt == nil:
			sf.Invalid = append(sf.Invalid, r.Address) // refused locally
		default:
			sf.ValidUnsent = append(sf.ValidUnsent, r.Address)
		}
	}
	if len(sf.ValidUnsent) == 0 && len(sf.Invalid) == 0 {
		return nil
	}
	return sf
}

// mailCommand builds MAIL FROM with its parameters in JavaMail's order
// (SMTPUTF8, RET, AUTH, mailextension), preceded by mailq's SIZE and BODY
// and with ENVID after RET (RFC 3461 §4.3, 4.4).
func (c *Conn) mailCommand(env Envelope, from string) (string, error) {
	var b strings.Builder
	b.WriteString("MAIL FROM:<" + from + ">")
	if c.ext.has("SIZE") && env.Size > 0 {
		b.WriteString(" SIZE=" + strconv.FormatInt(env.Size, 10))
	}
	if env.EightBit {
		if c.ext.has("8BITMIME") {
			b.WriteString(" BODY=8BITMIME")
		} else {
			c.log.Info().Str("host", c.host).Msg("8-bit message to a server without 8BITMIME; sending it unchanged")
		}
	}
	if needsUTF8(env) && c.ext.has("SMTPUTF8") {
		b.WriteString(" SMTPUTF8")
	}
	if c.ext.has("DSN") {
		ret := env.Ret
		if ret == "" {
			ret = c.s.DSNRet
		}
		if ret != "" {
			b.WriteString(" RET=" + strings.ToUpper(ret))
		}
		if env.EnvID != "" {
			b.WriteString(" ENVID=" + esmtp.EncodeXtext(env.EnvID))
		}
	}
	if c.authd && c.ext.has("AUTH") && c.s.Submitter != "" {
		b.WriteString(" AUTH=" + esmtp.EncodeXtext(c.s.Submitter))
	}
	if c.s.MailExtension != "" {
		b.WriteString(" " + c.s.MailExtension)
	}
	line := b.String()
	return line, checkCommand(line)
}

// rcptCommand builds RCPT TO with NOTIFY and ORCPT when DSN is advertised.
func (c *Conn) rcptCommand(r Recipient) string {
	line := "RCPT TO:<" + r.Address + ">"
	if !c.ext.has("DSN") {
		return line
	}
	notify := r.Notify
	if notify == "" {
		notify = c.s.DSNNotify
	}
	if notify != "" {
		line += " NOTIFY=" + strings.ToUpper(notify)
	}
	if r.ORCPT != "" {
		// Stored decoded; RFC 3461 §4.2 wants it xtext-encoded (RFC 6533
		// utf-8-addr-xtext for type utf-8): "bob+tag" goes as "bob+2Btag".
		line += " ORCPT=" + esmtp.ParseORCPT(r.ORCPT).Param()
	}
	return line
}

// needsUTF8 reports whether the envelope needs SMTPUTF8 (RFC 6531).
func needsUTF8(env Envelope) bool {
	if env.SMTPUTF8 || !esmtp.IsASCII(env.From) {
		return true
	}
	for _, r := range env.Recipients {
		if !esmtp.IsASCII(r.Address) {
			return true
		}
	}
	return false
}

func mergeOrder(a, b []int) []int {
	out := append(append([]int(nil), a...), b...)
	slices.Sort(out)
	return out
}
