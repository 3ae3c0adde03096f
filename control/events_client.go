package control

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"

	"mailq/events"
)

// EventsQuery selects the events Client.Events streams.
type EventsQuery struct {
	After  uint64 // events with a larger id
	Since  string // or: from this time (RFC 3339) or this long ago ("30m")
	Follow bool   // keep streaming new events until ctx ends
}

// Events streams events to fn, one raw JSON object per call, in id order.
func (c *Client) Events(ctx context.Context, q EventsQuery, fn func(events.Event, []byte) error) error {
	v := url.Values{}
	if q.After > 0 {
		v.Set("after", strconv.FormatUint(q.After, 10))
	}
	if q.Since != "" {
		v.Set("since", q.Since)
	}
	if q.Follow {
		v.Set("follow", "1")
	}
	resp, err := c.send(ctx, "GET", APIPrefix+"events?"+v.Encode(), nil, 0)
	if err != nil {
		return err
	}
	defer resp.Close()
	sc := bufio.NewScanner(resp)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e events.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("reading the event stream: %w", err)
		}
		if err := fn(e, sc.Bytes()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("reading the event stream: %w", err)
	}
	if msg := resp.Trailer(ErrorTrailer); msg != "" {
		return &APIError{Status: 500, Message: "the event stream broke off: " + msg}
	}
	return nil
}

// Webhooks returns every webhook's state.
func (c *Client) Webhooks(ctx context.Context) ([]events.WebhookStatus, error) {
	var out []events.WebhookStatus
	err := c.do(ctx, "GET", APIPrefix+"webhooks", nil, &out)
	return out, err
}

// SuppressionList streams the entries in force.
func (c *Client) SuppressionList(ctx context.Context, fn func(SuppressionEntry) error) error {
	resp, err := c.send(ctx, "GET", APIPrefix+"suppression", nil, 0)
	if err != nil {
		return err
	}
	defer resp.Close()
	dec := json.NewDecoder(resp)
	for {
		var e SuppressionEntry
		if err := dec.Decode(&e); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("reading the suppression list: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if msg := resp.Trailer(ErrorTrailer); msg != "" {
		return &APIError{Status: 500, Message: "the list is incomplete: " + msg}
	}
	return nil
}

// SuppressionCheck returns the entry for addr; a 404 *APIError when none.
func (c *Client) SuppressionCheck(ctx context.Context, addr string) (SuppressionEntry, error) {
	var e SuppressionEntry
	err := c.do(ctx, "GET", APIPrefix+"suppression/"+url.PathEscape(addr), nil, &e)
	return e, err
}

// SuppressionAdd puts addr on the list.
func (c *Client) SuppressionAdd(ctx context.Context, addr, reason string) (SuppressionEntry, error) {
	body, _ := json.Marshal(SuppressionAdd{Address: addr, Reason: reason})
	var e SuppressionEntry
	err := c.do(ctx, "POST", APIPrefix+"suppression", body, &e)
	return e, err
}

// SuppressionRemove takes addr off the list; a 404 *APIError when it was not on it.
func (c *Client) SuppressionRemove(ctx context.Context, addr string) error {
	return c.do(ctx, "DELETE", APIPrefix+"suppression/"+url.PathEscape(addr), nil, nil)
}
