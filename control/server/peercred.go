package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"

	"golang.org/x/sys/unix"
)

// Peer is the identity of the process at the other end of a control
// connection, as the kernel reports it (SO_PEERCRED, unix(7)).
type Peer struct {
	PID int32
	UID uint32
	GID uint32
}

type peerKey struct{}

// errNoPeer is returned when the connection's credentials could not be read;
// such a connection is refused, never trusted.
var errNoPeer = errors.New("control: peer credentials unavailable")

// peerFromConn reads SO_PEERCRED from a unix socket connection.
func peerFromConn(c net.Conn) (Peer, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return Peer{}, fmt.Errorf("%w: not a unix socket connection (%T)", errNoPeer, c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return Peer{}, fmt.Errorf("%w: %v", errNoPeer, err)
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Peer{}, fmt.Errorf("%w: %v", errNoPeer, err)
	}
	if credErr != nil {
		return Peer{}, fmt.Errorf("%w: %v", errNoPeer, credErr)
	}
	return Peer{PID: cred.Pid, UID: cred.Uid, GID: cred.Gid}, nil
}

// connContext is the http.Server ConnContext hook: it records the peer
// (or the reason it is unknown) in the connection's context.
func connContext(ctx context.Context, c net.Conn) context.Context {
	p, err := peerFromConn(c)
	if err != nil {
		return context.WithValue(ctx, peerKey{}, err)
	}
	return context.WithValue(ctx, peerKey{}, p)
}

// peerOf returns the peer recorded by connContext.
func peerOf(ctx context.Context) (Peer, error) {
	switch v := ctx.Value(peerKey{}).(type) {
	case Peer:
		return v, nil
	case error:
		return Peer{}, v
	}
	return Peer{}, errNoPeer
}

// GroupAuthorizer returns the default check: root, the daemon's own user, and
// members of group gid (the socket's group; the process's primary gid or a
// supplementary group listed in /etc/group for its user) are allowed.
func GroupAuthorizer(gid uint32) func(Peer) error {
	self := uint32(os.Getuid())
	return func(p Peer) error {
		if p.UID == 0 || p.UID == self || p.GID == gid {
			return nil
		}
		if u, err := user.LookupId(strconv.FormatUint(uint64(p.UID), 10)); err == nil {
			if ids, err := u.GroupIds(); err == nil {
				want := strconv.FormatUint(uint64(gid), 10)
				for _, id := range ids {
					if id == want {
						return nil
					}
				}
			}
		}
		group := strconv.FormatUint(uint64(gid), 10)
		if g, err := user.LookupGroupId(group); err == nil {
			group = g.Name + " (gid " + group + ")"
		}
		return fmt.Errorf("uid %d may not use the mailq control socket: only root, the daemon's user (uid %d) and members of the socket group %s may; ask an administrator to add you to that group",
			p.UID, self, group)
	}
}
