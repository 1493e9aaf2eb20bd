package models

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"
)

// FindContainerByDockerID returns the container whose Docker id is id or
// starts with it (Docker prints 12-character short ids), or ErrNotFound. A
// prefix shared by several containers is ErrNotFound too: the caller must
// give more of the id. Front ends use it to resolve an identifier a person
// copied from `docker ps`.
func (s *Store) FindContainerByDockerID(ctx context.Context, id string) (*Container, error) {
	if id == "" {
		return nil, fmt.Errorf("find container: %w: empty docker id", ErrInvalid)
	}
	var found []Container
	err := s.read(ctx, func(db *gorm.DB) error {
		// substr instead of LIKE: the id is compared literally, so no
		// character in it can act as a wildcard.
		return db.Where("substr(docker_id, 1, ?) = ?", len(id), id).Limit(2).Find(&found).Error
	})
	if err != nil {
		return nil, fmt.Errorf("find container %s: %w", id, err)
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("find container %s: %w", id, ErrNotFound)
	}
	return &found[0], nil
}

// ContainerCounts are the registered containers counted by what status shows.
type ContainerCounts struct {
	Managed, Running, Adopted int64
}

// CountContainers counts the registered containers in one aggregate query,
// so system_status reads no rows into memory.
func (s *Store) CountContainers(ctx context.Context) (ContainerCounts, error) {
	var out ContainerCounts
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Table(Container{}.TableName()).
			Select("count(*) AS managed, coalesce(sum(state = 'running'), 0) AS running, coalesce(sum(adopted <> 0), 0) AS adopted").
			Scan(&out).Error
	})
	if err != nil {
		return ContainerCounts{}, fmt.Errorf("count containers: %w", err)
	}
	return out, nil
}

// Cursor is where a page of a list ends: the sort time and id of its last
// row. The next page starts strictly after it in the list's order (time,
// then id), so rows written meanwhile neither repeat nor shift the pages,
// and each page is one index range, however long the history.
type Cursor struct {
	Time time.Time
	ID   string
}

// String encodes the cursor for a client to send back as it is.
func (c Cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(c.Time.UTC().Format(time.RFC3339Nano) + "|" + c.ID))
}

// ParseCursor decodes a cursor made by Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, fmt.Errorf("cursor: %w: not a cursor from a previous page", ErrInvalid)
	}
	at, id, ok := strings.Cut(string(raw), "|")
	t, terr := time.Parse(time.RFC3339Nano, at)
	if !ok || terr != nil || id == "" {
		return Cursor{}, fmt.Errorf("cursor: %w: not a cursor from a previous page", ErrInvalid)
	}
	return Cursor{Time: t.UTC(), ID: id}, nil
}

// keysetPage orders q by (col, id) in the given direction and, after the
// first page, starts it past after. The row-value comparison is one range
// of an index on col (ties broken by id among equal times only).
func keysetPage(q *gorm.DB, col string, desc bool, after *Cursor) *gorm.DB {
	op, dir := ">", "ASC"
	if desc {
		op, dir = "<", "DESC"
	}
	if after != nil {
		q = q.Where("("+col+", id) "+op+" (?, ?)", after.Time.UTC(), after.ID)
	}
	return q.Order(col + " " + dir + ", id " + dir)
}

// DiffFilesChanged returns how many files diff id changes, or ErrNotFound:
// one column of one row by its key, for a task's detail (work_status), which
// needs no more of the diff.
func (s *Store) DiffFilesChanged(ctx context.Context, id string) (int, error) {
	var n []int
	err := s.read(ctx, func(db *gorm.DB) error {
		return diffFilesChangedQuery(db, id).Pluck("files_changed", &n).Error
	})
	if err != nil {
		return 0, fmt.Errorf("read files changed of diff %s: %w", id, err)
	}
	if len(n) == 0 {
		return 0, fmt.Errorf("read files changed of diff %s: %w", id, ErrNotFound)
	}
	return n[0], nil
}

// diffFilesChangedQuery selects diff id's row by its key (shared with the
// query-plan test).
func diffFilesChangedQuery(db *gorm.DB, id string) *gorm.DB {
	return db.Model(&Diff{}).Where("id = ?", id).Limit(1)
}
