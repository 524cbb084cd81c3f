package dedup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/badger/v4/y"
	"google.golang.org/protobuf/proto"
)

// checkTables reads badger's manifest in dir (the list of its tables) and
// then the footer and index of every table it lists, verifying the index's
// checksum, and returns an error wrapping ErrDamaged for the first thing
// that does not hold together. badger.Open itself panics, in goroutines of
// its own where no recover reaches, on a table whose footer points outside
// the file, and leaves goroutines running when it fails on a missing
// table: both are caught here first. The blocks themselves are verified by
// badger as it reads them (options.OnBlockRead), with an error, not a
// panic. A directory without a manifest is a new index.
//
// The table layout (badger v4 table/builder.go Finish): blocks, index,
// index length (4 bytes, big-endian), checksum of the index (pb.Checksum),
// checksum length (4 bytes, big-endian).
func checkTables(dir string, opt badger.Options) error {
	f, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open manifest: %w", err)
	}
	defer f.Close()
	m, _, err := badger.ReplayManifestFile(f, opt.ExternalMagicVersion, opt)
	if err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrDamaged, err)
	}
	for id := range m.Tables {
		name := table.NewFilename(id, dir)
		if err := checkTable(name); err != nil {
			return fmt.Errorf("%w: table %s: %v", ErrDamaged, filepath.Base(name), err)
		}
	}
	return nil
}

func checkTable(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	end := fi.Size()
	u32 := func(at int64) (int64, error) {
		if at < 0 {
			return 0, io.ErrUnexpectedEOF
		}
		var b [4]byte
		if _, err := f.ReadAt(b[:], at); err != nil {
			return 0, err
		}
		return int64(binary.BigEndian.Uint32(b[:])), nil
	}
	read := func(at, n int64) ([]byte, error) {
		if at < 0 || n < 0 || at+n > end {
			return nil, io.ErrUnexpectedEOF
		}
		b := make([]byte, n)
		_, err := f.ReadAt(b, at)
		return b, err
	}
	chkLen, err := u32(end - 4)
	if err != nil {
		return fmt.Errorf("checksum length: %w", err)
	}
	chkAt := end - 4 - chkLen
	b, err := read(chkAt, chkLen)
	if err != nil {
		return fmt.Errorf("checksum of %d bytes: %w", chkLen, err)
	}
	var chk pb.Checksum
	if err := proto.Unmarshal(b, &chk); err != nil {
		return fmt.Errorf("checksum: %w", err)
	}
	idxLen, err := u32(chkAt - 4)
	if err != nil {
		return fmt.Errorf("index length: %w", err)
	}
	idx, err := read(chkAt-4-idxLen, idxLen)
	if err != nil {
		return fmt.Errorf("index of %d bytes: %w", idxLen, err)
	}
	if err := y.VerifyChecksum(idx, &chk); err != nil {
		return fmt.Errorf("index: %w", err)
	}
	return nil
}
