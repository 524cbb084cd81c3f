package localdb

import (
	"bytes"
	"io"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// countingFS counts the writes that reach its files.
type countingFS struct {
	vfs.FS
	writes *int
}

func (fs countingFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, category)
	if err != nil {
		return nil, err
	}
	return countingFile{f, fs.writes}, nil
}

type countingFile struct {
	vfs.File
	writes *int
}

func (f countingFile) Write(p []byte) (int, error) {
	*f.writes++
	return f.File.Write(p)
}

// TestTablesGatherWrites: a table's writes reach its file in writes of
// tableWriteBuffer bytes (and one larger write at once), written out
// before Stat, SyncTo and Close, with every byte in order; another file's
// writes go through one by one.
func TestTablesGatherWrites(t *testing.T) {
	var writes int
	fs := tablesFS{countingFS{vfs.NewMem(), &writes}}
	f, err := fs.Create("000007.sst", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	write := func(n int) {
		t.Helper()
		p := bytes.Repeat([]byte{byte(want.Len() % 251)}, n)
		want.Write(p)
		if m, err := f.Write(p); m != n || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", n, m, err)
		}
	}
	for range 100 { // 400 KiB in blocks of 4 KiB: one write of 256 KiB so far
		write(4096)
	}
	if writes != 1 {
		t.Errorf("%d writes after 100 blocks of 4 KiB, want 1", writes)
	}
	if info, err := f.Stat(); err != nil || info.Size() != int64(want.Len()) {
		t.Errorf("Stat: %v, %v; want size %d", info, err, want.Len())
	}
	write(tableWriteBuffer + 1) // at once
	if _, err := f.SyncTo(int64(want.Len())); err != nil {
		t.Fatal(err)
	}
	write(100)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if writes != 4 {
		t.Errorf("%d writes, want 4 (256 KiB, the rest at Stat, the large one, the last at Close)", writes)
	}
	r, err := fs.Open("000007.sst")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Errorf("file holds %d bytes (%v), want the %d written in order", len(got), err, want.Len())
	}

	writes = 0
	g, err := fs.Create("000008.log", vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := g.Write(make([]byte, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if writes != 10 {
		t.Errorf("a log's 10 writes reached its file as %d", writes)
	}
	g.Close()
}
