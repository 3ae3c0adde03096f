package intake

import (
	"fmt"
	"os/user"
	"strconv"
)

// UserName is the login name of uid, or "uid N" when it has none: who
// wrote a maildrop file or called the control socket.
func UserName(uid uint32) string {
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		return u.Username
	}
	return fmt.Sprintf("uid %d", uid)
}
