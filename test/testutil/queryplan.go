package testutil

import (
	"testing"

	"gorm.io/gorm"
)

// QueryPlan returns the detail lines of SQLite's EXPLAIN QUERY PLAN for sql
// on db, for tests that check a query reads an index, not the whole table.
func QueryPlan(tb testing.TB, db *gorm.DB, sql string) []string {
	tb.Helper()
	rows, err := db.Raw("EXPLAIN QUERY PLAN " + sql).Rows()
	if err != nil {
		tb.Fatalf("explain %s: %v", sql, err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			tb.Fatal(err)
		}
		plan = append(plan, detail)
	}
	return plan
}
