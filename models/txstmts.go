package models

import (
	"context"
	"database/sql"

	"gorm.io/gorm"
)

// gorm's statement cache (PrepareStmt) prepares a statement met first
// inside a transaction on that transaction, and database/sql cannot reuse a
// statement that belongs to a transaction in the next one: every statement
// of every write transaction was prepared again on each write (a wide INSERT
// of a task: about a tenth of the store's CPU per task_worker call). The
// transactions of write therefore begin through dbPreparedWrites, whose
// transaction prepares on the pool instead; database/sql then keeps one
// prepared statement per connection and every later transaction reuses it.

// dbPreparedWrites is the store's pool as gorm's transactions begin on it.
type dbPreparedWrites struct {
	*gorm.PreparedStmtDB
	pool *sql.DB
}

// BeginTx begins on the pool, like PreparedStmtDB.BeginTx, with the
// transaction preparing on the pool.
func (p *dbPreparedWrites) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	tx, err := p.pool.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &gorm.PreparedStmtTX{PreparedStmtDB: p.PreparedStmtDB, Tx: &dbPreparedTx{Tx: tx, pool: p.pool}}, nil
}

// dbPreparedTx is a transaction whose PrepareContext prepares on the pool;
// gorm runs the statement with StmtContext, on the transaction's connection.
type dbPreparedTx struct {
	*sql.Tx
	pool *sql.DB
}

// PrepareContext prepares query on the pool, or on the transaction when
// the pool cannot: a statement on a table the transaction itself created
// (a migration) compiles only there.
func (t *dbPreparedTx) PrepareContext(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, err := t.pool.PrepareContext(ctx, query); err == nil {
		return st, nil
	}
	return t.Tx.PrepareContext(ctx, query)
}

// writeSession is db for one write transaction: with the pool's statement
// cache, its transactions begin through dbPreparedWrites. Preparing on the
// pool takes a second connection while the transaction holds one; write
// transactions take turns (writeSlot) and readers give theirs back, so with
// two connections or more one is always coming.
func (s *Store) writeSession(ctx context.Context, db *gorm.DB) *gorm.DB {
	tx := db.WithContext(ctx) // a new statement: the change below stays in it
	if p, ok := tx.Statement.ConnPool.(*gorm.PreparedStmtDB); ok && s.pg == nil && db == s.db && s.maxOpenConns >= 2 {
		tx.Statement.ConnPool = s.preparedWrites(p)
	}
	return tx
}

// preparedWrites returns the store's dbPreparedWrites over p (made once).
func (s *Store) preparedWrites(p *gorm.PreparedStmtDB) *dbPreparedWrites {
	s.preparedWritesOnce.Do(func() { s.preparedWritesPool = &dbPreparedWrites{PreparedStmtDB: p, pool: s.sqlDB} })
	return s.preparedWritesPool
}
