package clientconf

import (
	"io/fs"
	"syscall"
)

// readFile is os.ReadFile in four system calls (open, read until the end,
// close). os.Open makes each file ready for the runtime's poller first, a
// few more calls that sendmail, reading its configuration at each start,
// paid for nothing (issue 13: on a virtual machine every call counts).
// Errors are *fs.PathError, as os.ReadFile's: errors.Is(err,
// fs.ErrPermission) still tells a file this user may not read.
func readFile(path string) ([]byte, error) {
	fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	for err == syscall.EINTR {
		fd, err = syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer syscall.Close(fd)
	data := make([]byte, 0, 4096)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := syscall.Read(fd, data[len(data):cap(data)])
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		case n == 0:
			return data, nil
		}
		data = data[:len(data)+n]
	}
}
