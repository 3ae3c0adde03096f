package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"mailq/control"
	"mailq/queue"
)

// cmdCat prints a stored message as it will be sent (Postfix postcat -q):
// whole, its header only, or its body only.
func (a *app) cmdCat(args []string) error {
	fs := a.newFlags("cat")
	headers := fs.Bool("headers", false, "the header only")
	bodyOnly := fs.Bool("body", false, "the body only")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("cat takes exactly one message id")
	}
	if *headers && *bodyOnly {
		return usagef("cat: --headers or --body, not both")
	}
	c, done, err := a.readClient(context.Background())
	if err != nil {
		return err
	}
	defer done()
	body, err := c.Body(context.Background(), queue.ID(rest[0]))
	if err != nil {
		return err
	}
	defer body.Close()
	return copyPart(a.stdout, body, *headers, *bodyOnly)
}

// copyPart copies a message, or only its header (up to and including the
// blank line) or only its body (after it).
func copyPart(w io.Writer, r io.Reader, headerOnly, bodyOnly bool) error {
	if !headerOnly && !bodyOnly {
		_, err := io.Copy(w, r)
		return err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadBytes('\n')
		if headerOnly {
			if _, werr := w.Write(line); werr != nil {
				return werr
			}
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 && len(line) > 0 || err != nil {
			if err != nil && err != io.EOF {
				return err
			}
			break
		}
	}
	if headerOnly {
		return nil
	}
	_, err := io.Copy(w, br)
	return err
}

// cmdSummary prints recipients still to do by destination domain, sender
// domain or route, and by age (Postfix qshape).
func (a *app) cmdSummary(args []string) error {
	fs := a.newFlags("summary")
	asJSON := fs.Bool("json", false, "JSON")
	by := fs.String("by", "domain", "domain, sender or route")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usagef("summary takes no arguments")
	}
	switch *by {
	case "domain", "sender", "route":
	default:
		return usagef("summary: unknown --by %q (domain, sender or route)", *by)
	}
	c, done, err := a.readClient(context.Background())
	if err != nil {
		return err
	}
	defer done()
	sum, err := c.Summary(context.Background(), *by)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(a.stdout).Encode(sum)
	}
	printSummary(a.stdout, sum)
	return nil
}

func printSummary(w io.Writer, sum control.Summary) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\tT\t%s\t\n", strings.ToUpper(sum.By), strings.Join(sum.Buckets, "\t"))
	row := func(r control.SummaryRow) {
		cells := make([]string, len(r.Counts))
		for i, n := range r.Counts {
			cells[i] = fmt.Sprint(n)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t\n", r.Key, r.Total, strings.Join(cells, "\t"))
	}
	row(sum.Total)
	for _, r := range sum.Rows {
		row(r)
	}
	tw.Flush()
}
