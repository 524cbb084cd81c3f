package stream

import (
	"errors"
	"path/filepath"
	"syscall"
)

// dirWatch tells whether an entry was created, removed or renamed in a
// stream's msgs directory or in a directory that names it, or one of them
// was moved or removed, since it was made: one read of an inotify
// descriptor that returns nothing when none was. The kernel queues an
// event within the system call that makes the change, so a change made
// before a message was acknowledged is there to read by the time Sync runs
// for it.
type dirWatch struct {
	fd  int
	buf [512]byte
}

// dirWatchMask: entries created, removed or renamed in a directory, or the
// directory itself moved or removed. Writes to files are not changes: the
// block file blockSyncer holds stays the one it syncs. The kernel adds
// IN_Q_OVERFLOW and IN_IGNORED on its own; any event counts.
const dirWatchMask = syscall.IN_CREATE | syscall.IN_DELETE | syscall.IN_MOVED_FROM | syscall.IN_MOVED_TO |
	syscall.IN_MOVE_SELF | syscall.IN_DELETE_SELF | syscall.IN_ONLYDIR

// newDirWatch watches dir and each directory above it, up to root
// excluded.
func newDirWatch(dir, root string) (*dirWatch, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_NONBLOCK | syscall.IN_CLOEXEC)
	if err != nil {
		return nil, err
	}
	w := &dirWatch{fd: fd}
	root = filepath.Clean(root)
	for d := filepath.Clean(dir); d != root && d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := syscall.InotifyAddWatch(fd, d, dirWatchMask); err != nil {
			w.close()
			return nil, err
		}
	}
	return w, nil
}

// changed reports whether anything changed since the watch was made; once
// it has, the watch is spent (close it and make a new one).
func (w *dirWatch) changed() bool {
	for {
		_, err := syscall.Read(w.fd, w.buf[:])
		switch {
		case err == nil:
			return true // events: what they are does not matter
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EAGAIN):
			return false
		default:
			return true // unknown: check the paths
		}
	}
}

func (w *dirWatch) close() { syscall.Close(w.fd) }
