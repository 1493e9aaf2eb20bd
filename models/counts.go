package models

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// Counts by status are kept in table status_counts, one row per (table,
// status), by SQLite triggers on the tasks and diffs tables. A trigger runs
// inside the transaction of the write that fires it, whichever process or
// tool makes the write (another serve, an older binary, an operator's
// sqlite3), so the counts can never drift from the rows, and reading them
// costs a handful of rows however long the history is. A cache keyed by the
// data version would have to recount the whole history after every write of
// another process; the triggers never recount.

// countsTable is the table the triggers keep.
const countsTable = "status_counts"

// countedTables are the tables whose rows are counted by their status column.
var countedTables = []string{Task{}.TableName(), Diff{}.TableName()}

// countsDDL creates the counts table and, for each counted table, the three
// triggers that keep it: a row inserted, a status changed, a row deleted. A
// status row is created at zero before it is added to, so no UPSERT (whose
// support inside triggers varies between SQLite versions) is needed.
func countsDDL() []string {
	ddl := []string{`CREATE TABLE IF NOT EXISTS ` + countsTable + ` (
		tbl TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (tbl, status)) WITHOUT ROWID`}
	for _, t := range countedTables {
		add := func(row string) string {
			return `INSERT OR IGNORE INTO ` + countsTable + ` (tbl, status, n) VALUES ('` + t + `', ` + row + `.status, 0);
			UPDATE ` + countsTable + ` SET n = n + 1 WHERE tbl = '` + t + `' AND status = ` + row + `.status;`
		}
		sub := func(row string) string {
			return `UPDATE ` + countsTable + ` SET n = n - 1 WHERE tbl = '` + t + `' AND status = ` + row + `.status;`
		}
		ddl = append(ddl,
			`CREATE TRIGGER IF NOT EXISTS `+countsTrigger(t, "insert")+` AFTER INSERT ON `+t+` BEGIN `+add("NEW")+` END`,
			`CREATE TRIGGER IF NOT EXISTS `+countsTrigger(t, "update")+` AFTER UPDATE OF status ON `+t+
				` WHEN OLD.status IS NOT NEW.status BEGIN `+sub("OLD")+add("NEW")+` END`,
			`CREATE TRIGGER IF NOT EXISTS `+countsTrigger(t, "delete")+` AFTER DELETE ON `+t+` BEGIN `+sub("OLD")+` END`,
		)
	}
	return ddl
}

func countsTrigger(table, op string) string { return "trg_" + table + "_count_" + op }

// migrateCounts creates the counts table and its triggers in the migration's
// transaction. When any of them was missing (a database from before the
// counts, or one whose table a migration rebuilt, which drops its triggers)
// the counts are taken afresh from the rows, once.
func migrateCounts(tx *gorm.DB) error {
	want := []string{countsTable}
	for _, t := range countedTables {
		for _, op := range []string{"insert", "update", "delete"} {
			want = append(want, countsTrigger(t, op))
		}
	}
	d := dialectOf(tx)
	have, err := d.schemaObjects(tx, want)
	if err != nil {
		return fmt.Errorf("read counts schema: %w", err)
	}
	if int(have) == len(want) {
		return nil
	}
	for _, ddl := range d.countsDDL() {
		if err := tx.Exec(ddl).Error; err != nil {
			return fmt.Errorf("create counts: %w", err)
		}
	}
	if err := tx.Exec(`DELETE FROM ` + countsTable).Error; err != nil {
		return fmt.Errorf("reset counts: %w", err)
	}
	for _, t := range countedTables {
		if err := tx.Exec(`INSERT INTO ` + countsTable + ` (tbl, status, n) SELECT '` + t + `', status, count(*) FROM ` + t + ` GROUP BY status`).Error; err != nil {
			return fmt.Errorf("count %s: %w", t, err)
		}
	}
	return nil
}

// countsQuery reads the kept counts of one table (shared with the query-plan test).
func countsQuery(db *gorm.DB, table string) *gorm.DB {
	return db.Table(countsTable).Select("status, n").Where("tbl = ? AND n <> 0", table)
}

// keptCounts reads the counts of one table by status.
func keptCounts[K ~string](ctx context.Context, s *Store, table string) (map[K]int64, error) {
	return countByKey[K](ctx, s, func(db *gorm.DB) *gorm.DB { return countsQuery(db, table) })
}
