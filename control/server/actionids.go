package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"mailq/control"
	"mailq/queue"
)

// maxActionBody bounds an action request: about three million ids. The
// ids are applied as they arrive, so the bound is on the request, not on
// the daemon's memory; a longer list is split and sent in several requests.
const maxActionBody = 64 << 20

// errActionTooLarge names the limit and what to do about it.
var errActionTooLarge = fmt.Errorf("the request is longer than %d MiB (about 3 million ids); split the list, e.g. `split -l 1000000 ids` and one command per part", maxActionBody>>20)

// actionBatch is how many ids are handed on at a time while they stream in.
const actionBatch = 1000

// actionExtras are the parts of an action request besides its ids: a
// selection instead of ids, and the recipients delete and bounce narrow
// to (sent before the ids, which are applied as they stream in).
type actionExtras struct {
	Select     *control.Selection
	Recipients string
}

// readActionRequest decodes an control.ActionRequest ({"ids": [...], "all": bool})
// token by token and hands the ids to apply actionBatch at a time as they
// arrive, so a request of 250,000 ids needs neither a 250,000-id buffer
// nor a size limit near its length. It returns All and how many ids it read;
// "select" and "recipients" go to extra.
func readActionRequest(body io.Reader, extra *actionExtras, apply func([]queue.ID) error) (all bool, n int, err error) {
	lr := &io.LimitedReader{R: body, N: maxActionBody + 1}
	dec := json.NewDecoder(lr)
	tooLarge := func(err error) error {
		if lr.N <= 0 {
			return errActionTooLarge
		}
		return err
	}
	if err := expectDelim(dec, '{'); err != nil {
		return false, 0, tooLarge(err)
	}
	batch := make([]queue.ID, 0, actionBatch)
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return false, n, tooLarge(err)
		}
		switch key {
		case "all":
			if err := dec.Decode(&all); err != nil {
				return false, n, tooLarge(fmt.Errorf("\"all\": %w", err))
			}
		case "select":
			if err := dec.Decode(&extra.Select); err != nil {
				return false, n, tooLarge(fmt.Errorf("\"select\": %w", err))
			}
		case "recipients":
			if n > 0 || len(batch) > 0 {
				return false, n, fmt.Errorf("\"recipients\" must come before \"ids\"")
			}
			if err := dec.Decode(&extra.Recipients); err != nil {
				return false, n, tooLarge(fmt.Errorf("\"recipients\": %w", err))
			}
		case "ids":
			if t, err := dec.Token(); err != nil {
				return false, n, tooLarge(err)
			} else if t == nil {
				continue // "ids": null
			} else if t != json.Delim('[') {
				return false, n, fmt.Errorf("\"ids\" must be a list of message ids")
			}
			for dec.More() {
				var id queue.ID
				if err := dec.Decode(&id); err != nil {
					return false, n, tooLarge(fmt.Errorf("\"ids\" element %d: %w", n+len(batch)+1, err))
				}
				if batch = append(batch, id); len(batch) == actionBatch {
					if err := apply(batch); err != nil {
						return false, n, err
					}
					n += len(batch)
					batch = batch[:0]
				}
			}
			if _, err := dec.Token(); err != nil { // ']'
				return false, n, tooLarge(err)
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return false, n, tooLarge(err)
			}
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return false, n, tooLarge(err)
	}
	if len(batch) > 0 {
		if err := apply(batch); err != nil {
			return false, n, err
		}
		n += len(batch)
	}
	return all, n, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	t, err := dec.Token()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if t != want {
		return fmt.Errorf("want %q, got %v", string(want), t)
	}
	return nil
}
