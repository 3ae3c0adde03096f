package control

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Backup writes a snapshot of the live store to path: first to a
// temporary file beside it, fsync'd, then renamed into place, so path is
// either a complete snapshot or not there. Mode 0600: it holds every
// message.
func (c *Client) Backup(ctx context.Context, path string) (int64, error) {
	resp, err := c.send(ctx, "GET", APIPrefix+"backup", nil, 0)
	if err != nil {
		return 0, err
	}
	defer resp.Close()
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".partial-")
	if err != nil {
		return 0, fmt.Errorf("backup: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	n, err := io.Copy(tmp, resp)
	if err == nil {
		if msg := resp.Trailer(ErrorTrailer); msg != "" {
			err = fmt.Errorf("the daemon could not finish the snapshot: %s", msg)
		}
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("backup to %s failed, nothing was written there: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return n, nil
}
