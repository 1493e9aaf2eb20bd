package models

import (
	"strings"

	"gorm.io/gorm"
)

// dialect holds what differs between the two databases a store can live on:
// SQLite (the embedded default) and PostgreSQL (several servers on one
// store). Everything else — the schema, the queries, the optimistic writes —
// is shared. The dialect is picked from the GORM handle, so helpers that only
// hold a *gorm.DB (a transaction) find it too.
type dialect interface {
	// sql adapts a shared SQL text to this database (SQLite's 0/1 for a
	// boolean column, its INDEXED BY hint).
	sql(q string) string
	// schemaObjects counts how many of names exist as tables or triggers.
	schemaObjects(tx *gorm.DB, names []string) (int64, error)
	// countsDDL creates the status_counts table and the triggers keeping it.
	countsDDL() []string
	// beginWrite runs first in every write transaction: it serialises
	// writers of every process on the database (SQLite's BEGIN IMMEDIATE
	// and the write lock file do this already).
	beginWrite(tx *gorm.DB) error
	// endWrite runs last in every write transaction: it tells the other
	// processes of the change, token naming this store (SQLite's
	// data_version needs nothing).
	endWrite(tx *gorm.DB, token string) error
}

const postgresDialectName = "postgres"

func dialectOf(db *gorm.DB) dialect {
	if db != nil && db.Dialector != nil && db.Dialector.Name() == postgresDialectName {
		return postgresDialect{}
	}
	return sqliteDialect{}
}

// sqlFor adapts q to the database behind db (see dialect.sql).
func sqlFor(db *gorm.DB, q string) string { return dialectOf(db).sql(q) }

// indexedBy names table with SQLite's index hint; PostgreSQL's planner takes
// no hints, so there it is the bare table.
func indexedBy(db *gorm.DB, table, index string) string {
	if _, pg := dialectOf(db).(postgresDialect); pg {
		return table
	}
	return table + " INDEXED BY " + index
}

type sqliteDialect struct{}

func (sqliteDialect) sql(q string) string { return q }

func (sqliteDialect) schemaObjects(tx *gorm.DB, names []string) (int64, error) {
	var n int64
	err := tx.Raw(`SELECT count(*) FROM sqlite_master WHERE name IN ?`, names).Scan(&n).Error
	return n, err
}

func (sqliteDialect) countsDDL() []string { return countsDDL() }

func (sqliteDialect) beginWrite(*gorm.DB) error       { return nil }
func (sqliteDialect) endWrite(*gorm.DB, string) error { return nil }

// boolLiterals turns SQLite's integer booleans in shared SQL texts into
// PostgreSQL's (a boolean column does not compare with an integer there).
var boolLiterals = strings.NewReplacer(
	"finished = 0", "finished = false",
	"finished = 1", "finished = true",
)
