package models

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// ErrLeaseHeld: a restore was refused because a live server holds the
// leader lease of the database it would replace.
var ErrLeaseHeld = errors.New("a server holds the leader lease")

// BackupInfo describes a database file: what a backup holds, or what a
// restore is about to put in place.
type BackupInfo struct {
	Path           string
	InstallationID string
	SchemaVersion  int
	Tasks, Diffs   int64
	Bytes          int64
}

// Backup writes a consistent copy of the whole database to dest while other
// writers go on: SQLite's VACUUM INTO reads one snapshot (a read transaction,
// which in WAL mode blocks no writer) into a new, compacted file. The copy is
// written beside dest under a temporary name, checked with integrity_check,
// synced and only then renamed to dest, so dest is never a partial file.
// dest must not exist.
func (s *Store) Backup(ctx context.Context, dest string) (BackupInfo, error) {
	if s.pg != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w: %w", ErrInvalid, errPostgresBackup)
	}
	abs, err := filepath.Abs(dest)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup to %s: %w", dest, err)
	}
	if _, err := os.Lstat(abs); err == nil {
		return BackupInfo{}, fmt.Errorf("backup to %s: %w (choose a new file name)", abs, os.ErrExist)
	}
	tmp := abs + ".partial-" + randomHex(4)
	defer os.Remove(tmp) // gone already after a successful rename
	err = s.read(ctx, func(db *gorm.DB) error { return db.Exec("VACUUM INTO ?", tmp).Error })
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup to %s: vacuum into: %w", abs, err)
	}
	info, err := CheckDatabaseFile(ctx, tmp)
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup to %s: the copy does not check: %w", abs, err)
	}
	if err := syncFile(tmp); err != nil {
		return BackupInfo{}, fmt.Errorf("backup to %s: %w", abs, err)
	}
	if err := os.Rename(tmp, abs); err != nil {
		return BackupInfo{}, fmt.Errorf("backup to %s: %w", abs, err)
	}
	if err := syncDir(filepath.Dir(abs)); err != nil {
		return BackupInfo{}, fmt.Errorf("backup to %s: %w", abs, err)
	}
	info.Path = abs
	return info, nil
}

// CheckDatabaseFile opens path read-only and checks that it is a
// claude-parallel database this binary can use: a SQLite header,
// PRAGMA integrity_check answering "ok", a schema version not newer than
// SchemaVersion and an installation id. It never writes to the file.
func CheckDatabaseFile(ctx context.Context, path string) (BackupInfo, error) {
	info := BackupInfo{Path: path}
	st, err := os.Stat(path)
	if err != nil {
		return info, fmt.Errorf("check %s: %w", path, err)
	}
	if !st.Mode().IsRegular() || st.Size() == 0 {
		return info, fmt.Errorf("check %s: %w (not a regular non-empty file)", path, ErrCorrupt)
	}
	info.Bytes = st.Size()
	if err := checkHeader(path); err != nil {
		return info, err
	}
	db, err := openRaw(path, true)
	if err != nil {
		return info, fmt.Errorf("check %s: %w", path, err)
	}
	defer closeRaw(db)
	db = db.WithContext(ctx)
	var results []string
	if err := db.Raw("PRAGMA integrity_check").Scan(&results).Error; err != nil {
		return info, openError(path, "integrity_check", err)
	}
	if len(results) != 1 || results[0] != "ok" {
		return info, fmt.Errorf("check %s: %w: integrity_check says %q", path, ErrCorrupt, results)
	}
	if info.SchemaVersion, err = storedSchemaVersion(db); err != nil {
		return info, fmt.Errorf("check %s: %w", path, err)
	}
	if info.SchemaVersion == 0 {
		return info, fmt.Errorf("check %s: %w: no claude-parallel schema in it", path, ErrCorrupt)
	}
	if info.SchemaVersion > SchemaVersion {
		return info, fmt.Errorf("check %s: %w (file %d, binary %d)", path, ErrSchemaTooNew, info.SchemaVersion, SchemaVersion)
	}
	var id metaRow
	if err := db.Where("key = ?", metaInstallationID).Take(&id).Error; err != nil {
		return info, fmt.Errorf("check %s: %w: no installation id: %w", path, ErrCorrupt, err)
	}
	info.InstallationID = id.Value
	if err := db.Model(&Task{}).Count(&info.Tasks).Error; err != nil {
		return info, fmt.Errorf("check %s: count tasks: %w", path, err)
	}
	if err := db.Model(&Diff{}).Count(&info.Diffs).Error; err != nil {
		return info, fmt.Errorf("check %s: count diffs: %w", path, err)
	}
	return info, nil
}

// Restore replaces the database at dbPath with the backup at src. It
// refuses, leaving everything as it was, when src does not check (see
// CheckDatabaseFile) or when a live server holds the leader lease of the
// current database (ErrLeaseHeld): stop the servers first. The lease is
// checked again under the store's cross-process write lock, which every
// writer and every opening store takes, while the files are swapped.
//
// The current database, if any, is kept beside it as
// <dbPath>.pre-restore-<time> (with its -wal file), never deleted. The
// restored copy starts with no lease, so the next server leads at once.
func Restore(ctx context.Context, src, dbPath string, now time.Time) (BackupInfo, string, error) {
	dbPath, err := filepath.Abs(dbPath)
	if err != nil {
		return BackupInfo{}, "", fmt.Errorf("restore: %w", err)
	}
	info, err := CheckDatabaseFile(ctx, src)
	if err != nil {
		return info, "", fmt.Errorf("restore from %s: refused, the backup does not check: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		return info, "", fmt.Errorf("restore: %w", err)
	}
	// Refuse early, before copying anything, when a server leads.
	if err := checkNoLiveLeader(ctx, dbPath, now); err != nil {
		return info, "", err
	}
	tmp := dbPath + ".restoring-" + randomHex(4)
	defer removeDB(tmp)
	if err := copyFile(src, tmp); err != nil {
		return info, "", fmt.Errorf("restore: copy %s: %w", src, err)
	}
	if err := clearLeases(ctx, tmp); err != nil {
		return info, "", fmt.Errorf("restore: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return info, "", fmt.Errorf("restore: %w", err)
	}

	unlock, err := newFileLock(dbPath).lock(ctx)
	if err != nil {
		return info, "", fmt.Errorf("restore: %w", err)
	}
	defer unlock()
	if err := checkNoLiveLeader(ctx, dbPath, time.Now()); err != nil {
		return info, "", err
	}
	var kept string
	if _, err := os.Stat(dbPath); err == nil {
		kept = dbPath + ".pre-restore-" + now.UTC().Format("20060102T150405Z")
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if err := os.Rename(dbPath+suffix, kept+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return info, "", fmt.Errorf("restore: keep the current database as %s: %w", kept, err)
			}
		}
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return info, kept, fmt.Errorf("restore: put %s in place: %w", src, err)
	}
	if err := syncDir(filepath.Dir(dbPath)); err != nil {
		return info, kept, fmt.Errorf("restore: %w", err)
	}
	info.Path = dbPath
	return info, kept, nil
}

// checkNoLiveLeader returns ErrLeaseHeld when the database at dbPath (if
// there is one) has an unexpired leader lease.
func checkNoLiveLeader(ctx context.Context, dbPath string, now time.Time) error {
	if _, err := os.Stat(dbPath); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	db, err := openRaw(dbPath, true)
	if err != nil {
		return fmt.Errorf("restore: read the current database's lease: %w", err)
	}
	defer closeRaw(db)
	var n int64
	if err := db.WithContext(ctx).Raw(`SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'leases'`).Scan(&n).Error; err != nil {
		return fmt.Errorf("restore: read the current database's lease: %w", err)
	}
	if n == 0 {
		return nil
	}
	var l Lease
	err = db.WithContext(ctx).Where("name = ?", LeaderLease).Take(&l).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("restore: read the current database's lease: %w", err)
	}
	if !l.expired(now.UTC()) {
		return fmt.Errorf("restore refused: %w (%s, renewed %s); stop every server on %s first",
			ErrLeaseHeld, l.Holder, l.RenewedAt.Format(time.RFC3339), dbPath)
	}
	return nil
}

// clearLeases empties the leases table of the copy being restored: the
// holders named in it are processes of the past.
func clearLeases(ctx context.Context, path string) error {
	db, err := openRaw(path, false)
	if err != nil {
		return fmt.Errorf("open the restored copy: %w", err)
	}
	defer closeRaw(db)
	if err := db.WithContext(ctx).Exec("DELETE FROM leases").Error; err != nil {
		return fmt.Errorf("clear the restored copy's leases: %w", err)
	}
	return nil
}

// openRaw opens a SQLite file with plain GORM, outside any Store (no
// migration, no write lock): for checking and preparing files.
func openRaw(path string, readOnly bool) (*gorm.DB, error) {
	q := url.Values{}
	q.Set("_busy_timeout", strconv.Itoa(int(defaultBusyTimeout.Milliseconds())))
	if readOnly {
		q.Set("mode", "ro")
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
	db, err := gorm.Open(sqlite.New(sqlite.Config{DriverName: sqlite.DriverName, DSN: dsn}),
		&gorm.Config{Logger: logger.Discard, SkipDefaultTransaction: true})
	if err != nil {
		return nil, err
	}
	return db, nil
}

func closeRaw(db *gorm.DB) {
	if sqlDB, err := db.DB(); err == nil {
		_ = sqlDB.Close()
	}
}

func removeDB(path string) {
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		_ = os.Remove(path + suffix)
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
