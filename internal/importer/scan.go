package importer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
)

// Stat is what a first pass over an input file finds: its identity, for
// the resume point, and how many rows it holds, for progress.
type Stat struct {
	// SHA256 is the lower-case hex SHA-256 of the file's bytes.
	SHA256 string
	// Rows is the data rows: for CSV the records after the header (lines
	// not inside a quoted field, blank ones left out), for JSONL the lines
	// that are not blank.
	Rows int
	// Bytes is the file's size.
	Bytes int64
}

// Scan reads in once, hashing it and counting its rows in format f. It
// reads at disk speed (no parsing), so the import that follows can show
// "rows done of total" and resume where an earlier run of the same file
// stopped.
func Scan(in io.Reader, f Format) (Stat, error) {
	h := sha256.New()
	buf := make([]byte, 256<<10)
	var (
		st       Stat
		quoted   bool // inside a quoted CSV field
		nonBlank bool // the current line has a non-space byte
	)
	for {
		n, err := in.Read(buf)
		chunk := buf[:n]
		h.Write(chunk)
		st.Bytes += int64(n)
		for len(chunk) > 0 {
			if f == FormatCSV {
				i := bytes.IndexAny(chunk, "\"\n")
				if i < 0 {
					nonBlank = nonBlank || len(bytes.TrimSpace(chunk)) > 0
					break
				}
				nonBlank = nonBlank || len(bytes.TrimSpace(chunk[:i])) > 0
				if chunk[i] == '"' {
					quoted, nonBlank = !quoted, true
				} else if !quoted {
					if nonBlank {
						st.Rows++
					}
					nonBlank = false
				}
				chunk = chunk[i+1:]
				continue
			}
			i := bytes.IndexByte(chunk, '\n')
			if i < 0 {
				nonBlank = nonBlank || len(bytes.TrimSpace(chunk)) > 0
				break
			}
			if nonBlank || len(bytes.TrimSpace(chunk[:i])) > 0 {
				st.Rows++
			}
			nonBlank = false
			chunk = chunk[i+1:]
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, err
		}
	}
	if nonBlank {
		st.Rows++
	}
	if f == FormatCSV && st.Rows > 0 {
		st.Rows-- // the header
	}
	st.SHA256 = hex.EncodeToString(h.Sum(nil))
	return st, nil
}
