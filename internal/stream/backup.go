package stream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Backups use JetStream's own snapshot and restore API, as the nats CLI's
// `stream backup` / `stream restore` do:
//
//   - $JS.API.STREAM.SNAPSHOT.<stream> with a deliver subject: the server
//     takes a consistent snapshot of the stream's store and of its
//     consumers (their delivery and ack state), answers with the stream's
//     config and state at that point, then sends the snapshot in chunks to
//     the deliver subject, each to be acknowledged by replying to it; an
//     empty message with status 204 ends it, any other status is an error.
//   - $JS.API.STREAM.RESTORE.<stream> with that config and state: the
//     server answers with a subject to send the chunks to, each as a
//     request it acknowledges, and then an empty request, whose answer
//     says whether the stream was restored.
//
// A backup directory holds, per stream, <stream>.snapshot (the chunks as
// received) and <stream>.json (the snapshot answer), plus manifest.json.

// BackupFormat is the newest version of the backup directory's layout this
// code restores, and the one it writes when the backup holds local parts
// (Manifest.Local); a backup of streams alone is written as format 1, which
// older capstans restore.
const BackupFormat = 2

// ManifestFile is the name of a backup's manifest in its directory.
const ManifestFile = "manifest.json"

// backupStreams are the streams a backup holds, in the order they are
// snapshotted. KV buckets are streams named KV_<bucket>. A missing one
// (AUDIT, a bucket not yet made) is left out of the backup.
//
// Each snapshot is consistent, but they are taken one after another while
// capstan writes, so the order decides what a restore can get wrong:
//
//   - KV_state first, before EVENTS: what a writer records after its
//     events are stored (an import's resume point) is then never ahead of
//     the events restored. A resumed import sends some rows again, which
//     the de-duplication index (rebuilt from EVENTS at start) drops;
//     the other order would skip rows that are not in the restored stream.
//   - EVENTS, with its consumers' acknowledgements, before everything
//     delivery writes before it acknowledges an event: dead letters,
//     identity graph updates, suppressions, the ledger and statistics, and
//     last the sent-conversion records (KV_eventids). An event acknowledged
//     in the restored stream then has all of these in the backup, and one
//     that is not is read again: its dead letter or graph update is written
//     again (the same), and its conversion is not sent again when its
//     sent-conversion record was written before the last snapshot began.
//     Only conversions accepted after that can be sent again, as after any
//     restore of an older state; the other order would also resend those
//     recorded between the two snapshots, and could lose dead letters and
//     graph updates of events acknowledged in between.
//
// TestBackupOrder checks both with writes between the snapshots.
var backupStreams = []string{"KV_" + StateKV, EventsStream, DLQStream, "KV_" + IdentityKV, "KV_" + SuppressionKV,
	"KV_" + StatsMinutesKV, "KV_" + StatsQuartersKV, "KV_" + StatsHoursKV, AuditStream,
	"KV_" + AcceptedKV, "KV_" + EventIDsKV}

// Manifest describes a backup directory.
type Manifest struct {
	// Format is the layout version (BackupFormat when written).
	Format int `json:"format"`
	// Capstan is the version of the capstan that wrote the backup.
	Capstan string `json:"capstan"`
	// Time is when the backup started.
	Time time.Time `json:"time"`
	// Streams are the streams in the backup.
	Streams []BackupStream `json:"streams"`
	// Local are the parts of the data directory kept outside JetStream
	// (the identity graph's local store), format 2.
	Local []BackupLocal `json:"local,omitempty"`
}

// BackupLocal is one local part of a backup: the directory Name, in the
// backup and in the data directory.
type BackupLocal struct {
	Name string `json:"name"`
	// Files maps each file of the part (a path under Name) to its SHA-256.
	Files map[string]string `json:"files"`
}

// LocalPart is state that capstan keeps in the data directory outside
// JetStream and that a backup holds: a directory, restored into the data
// directory under the same name.
type LocalPart struct {
	// Name is the part's directory name (one path element).
	Name string
	// After is the stream after whose snapshot (taken, or skipped for a
	// missing stream) the part is written: see backupStreams for the
	// order's meaning.
	After string
	// Write writes a consistent copy of the part into dir, which does not
	// exist yet (a pebble checkpoint). ErrNoLocalPart: there is nothing to
	// back up, and the part is left out.
	Write func(ctx context.Context, dir string) error
}

// ErrNoLocalPart is returned by a LocalPart's Write that has nothing to
// back up.
var ErrNoLocalPart = errors.New("nothing to back up")

// BackupStream is one stream of a backup.
type BackupStream struct {
	Name     string `json:"name"`
	Messages uint64 `json:"messages"`
	LastSeq  uint64 `json:"last_seq"`
	// Consumers is the number of consumers whose state is in the snapshot.
	Consumers int `json:"consumers"`
	// Files maps each of the stream's files to its SHA-256, in hex.
	Files map[string]string `json:"files"`
}

// snapshotAnswer is the part of the snapshot request's answer capstan
// reads; Config and State are kept as the server sent them, for restore.
type snapshotAnswer struct {
	Error  *apiError       `json:"error,omitempty"`
	Config json.RawMessage `json:"config,omitempty"`
	State  json.RawMessage `json:"state,omitempty"`
}

type apiError struct {
	Code        int    `json:"code"`
	ErrCode     int    `json:"err_code"`
	Description string `json:"description"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (%d)", e.Description, e.ErrCode) }

// errNoStream is the JetStream error code for "stream not found".
const errNoStream = 10059

// Backup writes a consistent snapshot of each of capstan's streams that
// exists, consumers included, and each of parts, to dir (created; it must
// be empty or missing), then the manifest. It works while capstan serves.
// version is the running capstan's version, recorded in the manifest. When
// it fails, it empties dir again.
func (e *Engine) Backup(ctx context.Context, dir, version string, parts ...LocalPart) (*Manifest, error) {
	for _, p := range parts {
		if p.Name == "" || filepath.Base(p.Name) != p.Name || p.Name == "." || p.Name == ".." {
			return nil, fmt.Errorf("backup: local part name %q is not one path element", p.Name)
		}
	}
	if err := checkEmptyDir(dir); err != nil {
		return nil, fmt.Errorf("backup directory %s: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("backup directory %s: %w", dir, err)
	}
	m, err := e.backup(ctx, dir, version, parts)
	if err != nil {
		emptyDir(dir)
		return nil, err
	}
	return m, nil
}

func (e *Engine) backup(ctx context.Context, dir, version string, parts []LocalPart) (*Manifest, error) {
	m := &Manifest{Format: 1, Capstan: version, Time: time.Now().UTC()}
	for _, name := range backupStreams {
		bs, err := e.snapshot(ctx, dir, name)
		switch {
		case errors.Is(err, errStreamMissing):
		case err != nil:
			return nil, fmt.Errorf("snapshot stream %s: %w", name, err)
		default:
			m.Streams = append(m.Streams, *bs)
			if e.afterSnapshot != nil {
				e.afterSnapshot(name)
			}
		}
		for _, p := range parts {
			if p.After != name {
				continue
			}
			bl, err := writeLocal(ctx, dir, p)
			if errors.Is(err, ErrNoLocalPart) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("back up %s: %w", p.Name, err)
			}
			m.Local = append(m.Local, *bl)
			m.Format = BackupFormat
		}
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFileSync(filepath.Join(dir, ManifestFile), append(b, '\n')); err != nil {
		return nil, err
	}
	return m, nil
}

// writeLocal writes part p into dir/<p.Name> and lists its files with
// their checksums.
func writeLocal(ctx context.Context, dir string, p LocalPart) (*BackupLocal, error) {
	root := filepath.Join(dir, p.Name)
	if err := p.Write(ctx, root); err != nil {
		_ = os.RemoveAll(root)
		return nil, err
	}
	bl := &BackupLocal{Name: p.Name, Files: map[string]string{}}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("%s is not a regular file", path)
		}
		sum, err := fileSHA256(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		bl.Files[filepath.ToSlash(rel)] = sum
		return nil
	})
	if err != nil {
		return nil, err
	}
	return bl, nil
}

var (
	errStreamMissing = errors.New("stream does not exist")
	errDirNotEmpty   = errors.New("not empty")
)

func (e *Engine) snapshot(ctx context.Context, dir, name string) (*BackupStream, error) {
	inbox := nats.NewInbox()
	chunks := make(chan *nats.Msg, 64)
	sub, err := e.nc.ChanSubscribe(inbox, chunks)
	if err != nil {
		return nil, err
	}
	defer func() { _ = sub.Unsubscribe() }()
	req, _ := json.Marshal(map[string]any{"deliver_subject": inbox, "jsck": true})
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := e.nc.RequestWithContext(rctx, "$JS.API.STREAM.SNAPSHOT."+name, req)
	if err != nil {
		return nil, err
	}
	var ans snapshotAnswer
	if err := json.Unmarshal(resp.Data, &ans); err != nil {
		return nil, fmt.Errorf("snapshot answer: %w", err)
	}
	if ans.Error != nil {
		if ans.Error.ErrCode == errNoStream {
			return nil, errStreamMissing
		}
		return nil, ans.Error
	}
	var state struct {
		Msgs      uint64 `json:"messages"`
		LastSeq   uint64 `json:"last_seq"`
		Consumers int    `json:"consumer_count"`
	}
	if err := json.Unmarshal(ans.State, &state); err != nil {
		return nil, fmt.Errorf("snapshot state: %w", err)
	}
	bs := &BackupStream{Name: name, Messages: state.Msgs, LastSeq: state.LastSeq, Consumers: state.Consumers, Files: map[string]string{}}

	snapName := name + ".snapshot"
	f, err := os.OpenFile(filepath.Join(dir, snapName), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	w := io.MultiWriter(f, h)
	idle := time.NewTimer(30 * time.Second)
	defer idle.Stop()
	for done := false; !done; {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-idle.C:
			return nil, errors.New("no data from the server for 30s")
		case msg := <-chunks:
			idle.Reset(30 * time.Second)
			if len(msg.Data) == 0 {
				if st := msg.Header.Get("Status"); st != "" && st != "204" {
					return nil, fmt.Errorf("server ended the snapshot with %s %s", st, msg.Header.Get("Description"))
				}
				done = true
				break
			}
			if _, err := w.Write(msg.Data); err != nil {
				return nil, err
			}
			if msg.Reply != "" {
				if err := msg.Respond(nil); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	bs.Files[snapName] = hex.EncodeToString(h.Sum(nil))

	meta, _ := json.MarshalIndent(map[string]json.RawMessage{"config": ans.Config, "state": ans.State}, "", "  ")
	metaName := name + ".json"
	if err := writeFileSync(filepath.Join(dir, metaName), meta); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(meta)
	bs.Files[metaName] = hex.EncodeToString(sum[:])
	return bs, nil
}

// Restore refusals; the error wrapping one says which file or version.
var (
	ErrDataDirNotEmpty = errors.New("the data directory is not empty")
	ErrBackupTooNew    = errors.New("the backup was written by a newer capstan")
	ErrBackupDamaged   = errors.New("the backup is damaged")
)

// ReadManifest reads dir's manifest and checks the backup: its format is
// one this code restores, and every file it lists is there with its
// checksum.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBackupDamaged, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBackupDamaged, ManifestFile, err)
	}
	if m.Format > BackupFormat {
		return nil, fmt.Errorf("%w: capstan %s, backup format %d; this capstan restores format %d at most", ErrBackupTooNew, m.Capstan, m.Format, BackupFormat)
	}
	if m.Format < 1 || len(m.Streams) == 0 {
		return nil, fmt.Errorf("%w: %s lists no streams", ErrBackupDamaged, ManifestFile)
	}
	for _, l := range m.Local {
		if l.Name == "" || filepath.Base(l.Name) != l.Name || l.Name == "." || l.Name == ".." {
			return nil, fmt.Errorf("%w: %s lists a local part outside the backup: %q", ErrBackupDamaged, ManifestFile, l.Name)
		}
		for name, want := range l.Files {
			clean := filepath.Clean(filepath.FromSlash(name))
			if filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)) {
				return nil, fmt.Errorf("%w: %s lists a file outside the backup: %q", ErrBackupDamaged, ManifestFile, name)
			}
			got, err := fileSHA256(filepath.Join(dir, l.Name, clean))
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBackupDamaged, err)
			}
			if got != want {
				return nil, fmt.Errorf("%w: checksum mismatch in %s/%s", ErrBackupDamaged, l.Name, name)
			}
		}
	}
	for _, s := range m.Streams {
		for _, need := range []string{s.Name + ".snapshot", s.Name + ".json"} {
			if _, ok := s.Files[need]; !ok {
				return nil, fmt.Errorf("%w: %s does not list %s", ErrBackupDamaged, ManifestFile, need)
			}
		}
		for name, want := range s.Files {
			if filepath.Base(name) != name {
				return nil, fmt.Errorf("%w: %s lists a file outside the backup: %q", ErrBackupDamaged, ManifestFile, name)
			}
			got, err := fileSHA256(filepath.Join(dir, name))
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBackupDamaged, err)
			}
			if got != want {
				return nil, fmt.Errorf("%w: checksum mismatch in %s", ErrBackupDamaged, name)
			}
		}
	}
	return &m, nil
}

// Restore restores the backup in dir into cfg's data directory, which must
// be empty or missing, with an embedded engine started for the purpose
// and stopped at the end. Nothing is written before the backup and the
// data directory are checked; when restoring fails, the data directory is
// emptied again.
func Restore(ctx context.Context, cfg Config, dir string, log *slog.Logger) (*Manifest, error) {
	if cfg.URL != "" {
		return nil, errors.New("restore supports the embedded engine only (engine.nats_url is set): use the nats CLI's stream restore for a cluster")
	}
	if err := checkEmptyDir(cfg.DataDir); errors.Is(err, errDirNotEmpty) {
		return nil, fmt.Errorf("%w: %s: %v", ErrDataDirNotEmpty, cfg.DataDir, err)
	} else if err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	lock, err := lockDirCreate(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	defer lock.Close()
	if err := restoreAll(ctx, cfg, dir, m, log); err != nil {
		emptyDir(cfg.DataDir) // still locked: no capstan started on it meanwhile
		return nil, err
	}
	return m, nil
}

func restoreAll(ctx context.Context, cfg Config, dir string, m *Manifest, log *slog.Logger) error {
	cfg.defaults()
	cfg.Listen = "none"
	// The caller holds the data directory's lock.
	e := &Engine{cfg: cfg, log: log.With("component", "stream")}
	defer e.Close()
	if err := e.startEmbedded(cfg); err != nil {
		return err
	}
	for _, s := range m.Streams {
		if err := e.restoreStream(ctx, dir, s.Name); err != nil {
			return fmt.Errorf("restore stream %s: %w", s.Name, err)
		}
		info, err := e.js.Stream(ctx, s.Name)
		if err != nil {
			return fmt.Errorf("restore stream %s: %w", s.Name, err)
		}
		if info.CachedInfo().State.LastSeq != s.LastSeq {
			log.Warn("restored stream's last sequence differs from the manifest", "stream", s.Name, "want", s.LastSeq, "got", info.CachedInfo().State.LastSeq)
		}
	}
	for _, l := range m.Local {
		if err := restoreLocal(dir, cfg.DataDir, l); err != nil {
			return fmt.Errorf("restore %s: %w", l.Name, err)
		}
	}
	return nil
}

// restoreLocal copies the local part l of the backup in dir into the data
// directory, file by file (fsynced).
func restoreLocal(dir, dataDir string, l BackupLocal) error {
	for name := range l.Files {
		rel := filepath.Clean(filepath.FromSlash(name))
		to := filepath.Join(dataDir, l.Name, rel)
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			return err
		}
		if err := copyFileSync(filepath.Join(dir, l.Name, rel), to); err != nil {
			return err
		}
	}
	return nil
}

// copyFileSync copies from to to (created), and fsyncs it.
func copyFileSync(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func (e *Engine) restoreStream(ctx context.Context, dir, name string) error {
	meta, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := e.nc.RequestWithContext(rctx, "$JS.API.STREAM.RESTORE."+name, meta)
	if err != nil {
		return err
	}
	var ans struct {
		Error          *apiError `json:"error,omitempty"`
		DeliverSubject string    `json:"deliver_subject"`
	}
	if err := json.Unmarshal(resp.Data, &ans); err != nil {
		return fmt.Errorf("restore answer: %w", err)
	}
	if ans.Error != nil {
		return ans.Error
	}
	f, err := os.Open(filepath.Join(dir, name+".snapshot"))
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 128<<10)
	for {
		n, rerr := io.ReadFull(f, buf)
		if n > 0 {
			if err := e.restoreChunk(ctx, ans.DeliverSubject, buf[:n], false); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	return e.restoreChunk(ctx, ans.DeliverSubject, nil, true)
}

// restoreChunk sends one chunk (or, last, the empty end message) and
// checks the server's answer: empty for a chunk taken, an error document
// otherwise; for the end message, the stream's create answer.
func (e *Engine) restoreChunk(ctx context.Context, subject string, data []byte, last bool) error {
	timeout := 30 * time.Second
	if last {
		timeout = 5 * time.Minute // the server finishes the restore first
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	resp, err := e.nc.RequestWithContext(rctx, subject, data)
	if err != nil {
		return err
	}
	if len(resp.Data) == 0 {
		if last {
			return errors.New("no answer to the end of the restore")
		}
		return nil
	}
	var ans struct {
		Error *apiError `json:"error,omitempty"`
	}
	if err := json.Unmarshal(resp.Data, &ans); err != nil {
		return fmt.Errorf("restore answer: %w", err)
	}
	if ans.Error != nil {
		return ans.Error
	}
	return nil
}

// checkEmptyDir fails unless dir is missing or an empty directory.
func checkEmptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%w (it holds %s)", errDirNotEmpty, entries[0].Name())
	}
	return nil
}

// emptyDir removes what a failed Backup or Restore wrote into dir, which
// was empty before.
func emptyDir(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

func lockDirCreate(dir string) (*os.File, error) {
	lock, err := lockDir(dir)
	if err != nil {
		return nil, fmt.Errorf("lock data directory %s: %w", dir, err)
	}
	return lock, nil
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
