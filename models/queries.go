package models

import (
	"context"
	"fmt"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Query helpers shared by the object files.

// insertWithID inserts obj; with autoID it draws a new id on the (very
// unlikely) collision, otherwise a taken id is ErrAlreadyExists.
func insertWithID(tx *gorm.DB, obj any, autoID bool, newID func(), id func() string) error {
	for attempt := 0; ; attempt++ {
		if autoID {
			newID()
		}
		err := tx.Omit(clause.Associations).Create(obj).Error
		if err == nil {
			return nil
		}
		if !isUniqueViolation(err) {
			return fmt.Errorf("insert: %w", err)
		}
		if !autoID || attempt >= 3 {
			return fmt.Errorf("%w: id %s is taken", ErrAlreadyExists, id())
		}
	}
}

// casUpdate writes vals to the row id of table if its resource_version is
// still rv. A miss is ErrNotFound if the row is gone, else ErrConflict.
func casUpdate(tx *gorm.DB, table, id string, rv int64, vals map[string]any) error {
	res := tx.Table(table).Where("id = ? AND resource_version = ?", id, rv).Updates(vals)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 1 {
		return nil
	}
	var n int64
	if err := tx.Table(table).Where("id = ?", id).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return ErrConflict
}

// whereIn adds "col IN (...)", written as "col = ?" for a single value:
// SQLite can then walk an index in ORDER BY order instead of sorting.
func whereIn[T any](q *gorm.DB, col string, vals []T) *gorm.DB {
	if len(vals) == 1 {
		return q.Where(col+" = ?", vals[0])
	}
	return q.Where(col+" IN ?", vals)
}

// readOne returns the row of T matching query, or ErrNotFound.
func readOne[T any](ctx context.Context, s *Store, query string, args ...any) (*T, error) {
	var v T
	err := s.read(ctx, func(db *gorm.DB) error { return db.Where(query, args...).Take(&v).Error })
	if err != nil {
		return nil, notFound(err)
	}
	return &v, nil
}

// readAll returns the rows of T that the query built by q finds.
func readAll[T any](ctx context.Context, s *Store, q func(db *gorm.DB) *gorm.DB) ([]T, error) {
	var out []T
	err := s.read(ctx, func(db *gorm.DB) error { return q(db).Find(&out).Error })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// countByKey runs the query built by q, which selects a key and a count
// grouped by that key ("SELECT status, count(*) ... GROUP BY status"), and
// returns the counts by key.
func countByKey[K comparable](ctx context.Context, s *Store, q func(db *gorm.DB) *gorm.DB) (map[K]int64, error) {
	var out map[K]int64
	err := s.read(ctx, func(db *gorm.DB) error {
		rows, err := q(db).Rows()
		if err != nil {
			return err
		}
		defer rows.Close()
		out = make(map[K]int64)
		for rows.Next() {
			var key K
			var n int64
			if err := rows.Scan(&key, &n); err != nil {
				return err
			}
			out[key] = n
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// deleteExisting deletes the rows of model's table matching query, and
// returns ErrNotFound if there were none.
func deleteExisting(tx *gorm.DB, model any, query string, args ...any) error {
	res := tx.Where(query, args...).Delete(model)
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return ErrNotFound
	}
	return nil
}
