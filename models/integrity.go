package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"gorm.io/driver/sqlite"
)

// maxIntegrityLines bounds how many of quick_check's findings an error quotes:
// a badly damaged file yields thousands, and the first few say enough.
const maxIntegrityLines = 5

// CorruptAdvice says what to do about a damaged database file at path.
func CorruptAdvice(path string) string {
	return fmt.Sprintf("stop every claude-parallel process, then restore %s from a backup copy, "+
		"or move it aside (with %s-wal and %s-shm) to start with an empty store; "+
		"`sqlite3 %s .recover` may salvage its rows", path, path, path, path)
}

// QuickCheck runs SQLite's PRAGMA quick_check over the whole file, which
// reads every page: damage in the middle of the file (a torn write, a bad
// disk) is otherwise only met by the query that happens to touch it, and then
// every such call fails "malformed". It returns an error wrapping ErrCorrupt
// that quotes the first findings and says what to do.
func (s *Store) QuickCheck(ctx context.Context) error {
	if s.pg != nil {
		return s.pgCheck(ctx)
	}
	return quickCheck(ctx, s.sqlDB, s.path)
}

// CheckFile runs QuickCheck on the database at path without opening it as a
// store (no migration, no write, read-only): doctor uses it on a file a
// running server may hold. A missing file is fine (nil): it is created on
// first use.
func CheckFile(ctx context.Context, path string) error {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := checkHeader(path); err != nil {
		return err
	}
	db, err := sql.Open(sqlite.DriverName, "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		return fmt.Errorf("check store %s: %w", path, err)
	}
	defer db.Close()
	return quickCheck(ctx, db, path)
}

func quickCheck(ctx context.Context, db *sql.DB, path string) error {
	rows, err := db.QueryContext(ctx, "PRAGMA quick_check")
	if err != nil {
		return integrityError(path, err, nil)
	}
	defer rows.Close()
	var findings []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return integrityError(path, err, findings)
		}
		if line != "ok" && len(findings) < maxIntegrityLines {
			findings = append(findings, line)
		}
	}
	if err := rows.Err(); err != nil {
		return integrityError(path, err, findings)
	}
	if len(findings) > 0 {
		return fmt.Errorf("store %s is damaged: %w (quick_check: %s); %s",
			path, ErrCorrupt, strings.Join(findings, "; "), CorruptAdvice(path))
	}
	return nil
}

// integrityError reports a quick_check that could not finish: SQLite
// answers SQLITE_CORRUPT itself when the damage is in a page it needs to walk.
func integrityError(path string, err error, findings []string) error {
	if isCorrupt(err) || len(findings) > 0 {
		return fmt.Errorf("store %s is damaged: %w (quick_check: %w); %s", path, ErrCorrupt, err, CorruptAdvice(path))
	}
	return fmt.Errorf("check store %s: %w", path, err)
}
