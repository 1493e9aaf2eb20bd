package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/claude-parallel/claude-parallel/config"
	"github.com/claude-parallel/claude-parallel/models"
)

// openStore opens the store cfg names: the SQLite file at db_path, or the
// PostgreSQL database at store.dsn (store.driver postgres).
func openStore(ctx context.Context, cfg *config.Config, opts models.Options) (*models.Store, error) {
	if cfg.Store.EffectiveDriver() == config.StorePostgres {
		return models.OpenPostgres(ctx, cfg.Store.DSN.Value(), opts)
	}
	return models.Open(ctx, cfg.DBPath, opts)
}

// errPostgresFiles: the commands that work on SQLite's file (backup,
// restore) have PostgreSQL's own tools as their equivalent.
var errPostgresFiles = errors.New("the store is on PostgreSQL (store.driver postgres): use pg_dump to back it up and pg_restore to restore it")

// refuseOnPostgres stops a file-based command on a PostgreSQL store.
func refuseOnPostgres(cfg *config.Config, what string) error {
	if cfg.Store.EffectiveDriver() == config.StorePostgres {
		return fmt.Errorf("%s: %w", what, errPostgresFiles)
	}
	return nil
}

// checkPostgresStore is doctor's database check on PostgreSQL: the
// database answers, its schema is this binary's (or is created), and every
// table of the store reads (QuickCheck).
func checkPostgresStore(ctx context.Context, r *doctorReport, cfg *config.Config) {
	s, err := models.OpenPostgres(ctx, cfg.Store.DSN.Value(), models.Options{})
	if err != nil {
		r.fail("database", "database: %v", err)
		return
	}
	defer s.Close()
	if err := s.QuickCheck(ctx); err != nil {
		r.fail("database", "database: %v", err)
		return
	}
	r.ok("database answers and every table reads: %s", s.Path())
}
