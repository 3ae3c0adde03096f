package main

import (
	"context"
	"fmt"
)

// cmdBackup is `mailqctl backup FILE`: a consistent snapshot of the live
// store, streamed through the control socket and written to FILE here
// (README, "Backup and restore").
func (a *app) cmdBackup(args []string) error {
	fs := a.newFlags("backup")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usagef("backup takes exactly one file name")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	n, err := c.Backup(context.Background(), rest[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "backup of %d bytes written to %s\n", n, rest[0])
	return nil
}
