package localdb

import (
	"errors"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// tableWriteBuffer is how many bytes of a table being written are gathered
// before they are written to its file (tablesFS).
const tableWriteBuffer = 256 << 10

// tablesFS is the file system of the stores: fs, but the tables (".sst")
// it creates gather their writes in a buffer of tableWriteBuffer bytes.
// Pebble writes a table through a bufio.Writer of 4 KiB, so each block of
// 4 KiB or more, and each 4 KiB of smaller ones, was a write system call
// of its own: 4.9% of capstan's CPU delivering to new visitors
// (BenchmarkDelivery, the flushes and compactions of the identity store
// and the eventId guard's store), where one write of 256 KiB costs about
// what one of 4 KiB does on this VM (dd: 0.28 s of system time for 256
// MiB in writes of 4 KiB, 0.06 s in writes of 256 KiB).
//
// Only tables: pebble reads a table only once it is written, synced and
// closed, each of which writes out the buffer first, and it names a table
// in its manifest only after that, so a crash leaves at most an
// unreferenced partial file, as before. The log and the manifest are
// written as before (a write to the log that reached the kernel survives
// a crash of the process; one in a buffer of this process would not).
type tablesFS struct {
	vfs.FS
}

// Create creates name; a table gathers its writes (bufferedFile).
func (fs tablesFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil || !strings.HasSuffix(name, ".sst") {
		return f, err
	}
	return &bufferedFile{File: f, buf: make([]byte, 0, tableWriteBuffer)}, nil
}

// bufferedFile is a file written sequentially whose writes are gathered in
// buf and written out when it fills, and before every other use of the
// file but Fd, Prefetch and Preallocate (which act on the file's storage,
// not its contents). Not safe for concurrent use, as pebble's writers use
// it.
type bufferedFile struct {
	vfs.File
	buf []byte
}

// Write gathers p; a write as large as the buffer goes to the file at once.
func (f *bufferedFile) Write(p []byte) (int, error) {
	if len(f.buf)+len(p) > cap(f.buf) {
		if err := f.flush(); err != nil {
			return 0, err
		}
		if len(p) >= cap(f.buf) {
			return f.File.Write(p)
		}
	}
	f.buf = append(f.buf, p...)
	return len(p), nil
}

// flush writes out the gathered bytes. After an error the file's contents
// are unknown, as after a failed write: pebble gives the table up.
func (f *bufferedFile) flush() error {
	if len(f.buf) == 0 {
		return nil
	}
	_, err := f.File.Write(f.buf)
	f.buf = f.buf[:0]
	return err
}

func (f *bufferedFile) Sync() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *bufferedFile) SyncData() error {
	if err := f.flush(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *bufferedFile) SyncTo(length int64) (bool, error) {
	if err := f.flush(); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}

func (f *bufferedFile) Close() error {
	return errors.Join(f.flush(), f.File.Close())
}

func (f *bufferedFile) Stat() (vfs.FileInfo, error) {
	if err := f.flush(); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *bufferedFile) Read(p []byte) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *bufferedFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

func (f *bufferedFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.flush(); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}
