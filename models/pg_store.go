package models

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
)

// Store drivers (config store.driver).
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"
)

// pgChannel is the LISTEN/NOTIFY channel every write transaction notifies
// on, with the writing store's token as payload.
const pgChannel = "claude_parallel_changes"

// pgWriteLockKey is the transaction-scoped advisory lock every write takes
// first: writers of all processes queue on it as they do on SQLite's single
// write lock, so the read-then-write transactions (lease, idempotent
// creates, optimistic updates) keep SQLite's serial meaning.
const pgWriteLockKey = 0x6370_7772_6974_65 // "cpwrite"

// OpenDriver opens the store on the database named by driver: a file path
// for sqlite (Open), a connection string for postgres (OpenPostgres).
func OpenDriver(ctx context.Context, driver, target string, opts Options) (*Store, error) {
	switch driver {
	case "", DriverSQLite:
		return Open(ctx, target, opts)
	case DriverPostgres:
		return OpenPostgres(ctx, target, opts)
	default:
		return nil, fmt.Errorf("open store: %w: unknown store driver %q (sqlite or postgres)", ErrInvalid, driver)
	}
}

// OpenPostgres opens (creating the schema if needed) the store in the
// PostgreSQL database named by dsn (a URL or key=value string, as libpq
// takes). Several servers may open the same database: writes queue on one
// advisory lock, leases are judged by the database's clock (unless
// opts.Now is set, as tests do), and a LISTEN connection tells this store
// of the others' writes (DataVersion, Changed). Path reports the DSN
// without its password.
func OpenPostgres(ctx context.Context, dsn string, opts Options) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		// pgx quotes the DSN in some parse errors: never pass it on.
		return nil, fmt.Errorf("open store: %w: the postgres DSN does not parse", ErrInvalid)
	}
	display := PostgresDisplay(cfg.Config)
	dbClock := opts.Now == nil
	opts = opts.withDefaults()
	s := &Store{
		path: display,
		// PostgreSQL keeps microseconds: a time read back equals the one written.
		now:      func() time.Time { return opts.Now().UTC().Truncate(time.Microsecond) },
		log:      opts.Logger,
		observer: opts.Observer,
		pg:       &pgState{dsn: dsn, dbClock: dbClock, token: randomHex(8)},
	}
	// Times come back in UTC, as SQLite's do (pgx's default is time.Local).
	sqlDB := stdlib.OpenDB(*cfg, stdlib.OptionAfterConnect(func(_ context.Context, c *pgx.Conn) error {
		c.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
			Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
		return nil
	}))
	s.db, err = gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		Logger:                 newGormLogger(opts.Logger, opts.SlowQuery),
		NowFunc:                s.now,
		SkipDefaultTransaction: true,
	})
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open store %s: connect: %w", display, err)
	}
	if s.sqlDB, err = s.db.DB(); err != nil {
		return nil, fmt.Errorf("open store %s: connect: %w", display, err)
	}
	s.sqlDB.SetMaxOpenConns(opts.MaxOpenConns)
	s.sqlDB.SetMaxIdleConns(opts.MaxOpenConns)
	s.sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	if err := s.sqlDB.PingContext(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open store %s: connect: %w", display, err)
	}
	// Listen before the schema is read, so no write after it goes unheard.
	if err := s.pg.listen(ctx, s); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open store %s: listen: %w", display, err)
	}
	if s.cols, err = parseColumnSets(s.db); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open store %s: %w", display, err)
	}
	if err := s.migrate(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open store %s: migrate: %w", display, err)
	}
	if s.installationID, err = s.readMeta(ctx, metaInstallationID); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open store %s: read installation id: %w", display, err)
	}
	return s, nil
}

// PostgresDisplay names a PostgreSQL database for logs and messages: user,
// host, port and database, never the password.
func PostgresDisplay(c pgconn.Config) string {
	return fmt.Sprintf("postgres://%s@%s:%d/%s", c.User, c.Host, c.Port, c.Database)
}

// Driver is the store's database: DriverSQLite or DriverPostgres.
func (s *Store) Driver() string {
	if s.pg != nil {
		return DriverPostgres
	}
	return DriverSQLite
}

// pgState is what a store on PostgreSQL keeps besides the pool: the
// listener that counts the other processes' writes.
type pgState struct {
	dsn     string
	dbClock bool   // judge leases by the database's clock
	token   string // this store's NOTIFY payload

	others atomic.Int64 // writes of others heard, plus listener restarts
	cancel context.CancelFunc
	done   chan struct{}

	// Barriers in flight (see dataVersion), by payload.
	mu       sync.Mutex
	barriers map[string]chan struct{}
	seq      atomic.Int64
}

// barrierPrefix starts a barrier's payload; other stores ignore them.
const barrierPrefix = "barrier:"

// dataVersion is DataVersion on PostgreSQL: the count of other stores'
// writes heard, after every write committed before the call has been heard.
// It sends a notification to itself and waits for it on the listener:
// PostgreSQL delivers notifications in commit order, so when the barrier
// arrives, so has every earlier commit's. Without it a write by another
// process would be counted a moment after the call, not in it.
func (p *pgState) dataVersion(ctx context.Context, s *Store) (int64, error) {
	id := barrierPrefix + p.token + ":" + fmt.Sprint(p.seq.Add(1))
	ch := make(chan struct{})
	p.mu.Lock()
	if p.barriers == nil {
		p.barriers = map[string]chan struct{}{}
	}
	p.barriers[id] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.barriers, id)
		p.mu.Unlock()
	}()
	if err := s.db.WithContext(ctx).Exec(`SELECT pg_notify(?, ?)`, pgChannel, id).Error; err != nil {
		return 0, fmt.Errorf("read data version: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case <-ch:
		return p.others.Load(), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("read data version: the listener did not hear its own notification: %w", context.Cause(ctx))
	}
}

// listen opens the LISTEN connection, then keeps it in a goroutine: every
// notification whose payload is not this store's token counts as someone
// else's write and wakes Changed's waiters. A lost connection is reopened;
// since notifications sent meanwhile are lost, the reopening counts as a
// change (the watchers resync), like an unreadable data_version on SQLite.
func (p *pgState) listen(ctx context.Context, s *Store) error {
	conn, err := p.connect(ctx)
	if err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		for {
			p.wait(lctx, conn, s)
			_ = conn.Close(context.Background())
			if lctx.Err() != nil {
				return
			}
			delay := 100 * time.Millisecond
			for {
				select {
				case <-lctx.Done():
					return
				case <-time.After(delay):
				}
				if conn, err = p.connect(lctx); err == nil {
					break
				}
				s.log.Warn("postgres listener: reconnect failed", zap.String("db", s.path), zap.Error(err))
				delay = min(2*delay, 5*time.Second)
			}
			p.others.Add(1)
			s.changes.fire()
		}
	}()
	return nil
}

func (p *pgState) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.Connect(ctx, p.dsn)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgChannel); err != nil {
		_ = conn.Close(ctx)
		return nil, err
	}
	return conn, nil
}

func (p *pgState) wait(ctx context.Context, conn *pgx.Conn, s *Store) {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("postgres listener: connection lost", zap.String("db", s.path), zap.Error(err))
			}
			return
		}
		switch {
		case strings.HasPrefix(n.Payload, barrierPrefix):
			p.mu.Lock()
			if ch, ok := p.barriers[n.Payload]; ok {
				close(ch)
				delete(p.barriers, n.Payload)
			}
			p.mu.Unlock()
		case n.Payload != p.token:
			p.others.Add(1)
			s.changes.fire()
		}
	}
}

func (p *pgState) close() {
	if p.cancel != nil {
		p.cancel()
		<-p.done
	}
}

type postgresDialect struct{}

func (postgresDialect) sql(q string) string { return boolLiterals.Replace(q) }

func (postgresDialect) schemaObjects(tx *gorm.DB, names []string) (int64, error) {
	var n int64
	err := tx.Raw(`SELECT (SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename IN ?)
		+ (SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname IN ?)`, names, names).Scan(&n).Error
	return n, err
}

// countsDDL is SQLite's counting triggers (counts.go) in plpgsql: one
// function for every counted table, fired per row after a write.
func (postgresDialect) countsDDL() []string {
	ddl := []string{
		`CREATE TABLE IF NOT EXISTS ` + countsTable + ` (
			tbl TEXT NOT NULL, status TEXT NOT NULL, n BIGINT NOT NULL DEFAULT 0,
			PRIMARY KEY (tbl, status))`,
		`CREATE OR REPLACE FUNCTION cp_status_count() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP IN ('UPDATE', 'DELETE') THEN
				UPDATE ` + countsTable + ` SET n = n - 1 WHERE tbl = TG_TABLE_NAME AND status = OLD.status;
			END IF;
			IF TG_OP IN ('INSERT', 'UPDATE') THEN
				INSERT INTO ` + countsTable + ` (tbl, status, n) VALUES (TG_TABLE_NAME, NEW.status, 1)
					ON CONFLICT (tbl, status) DO UPDATE SET n = ` + countsTable + `.n + 1;
			END IF;
			RETURN NULL;
		END $$`,
	}
	for _, t := range countedTables {
		ddl = append(ddl,
			`DROP TRIGGER IF EXISTS `+countsTrigger(t, "insert")+` ON `+t,
			`CREATE TRIGGER `+countsTrigger(t, "insert")+` AFTER INSERT ON `+t+
				` FOR EACH ROW EXECUTE FUNCTION cp_status_count()`,
			`DROP TRIGGER IF EXISTS `+countsTrigger(t, "update")+` ON `+t,
			`CREATE TRIGGER `+countsTrigger(t, "update")+` AFTER UPDATE OF status ON `+t+
				` FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION cp_status_count()`,
			`DROP TRIGGER IF EXISTS `+countsTrigger(t, "delete")+` ON `+t,
			`CREATE TRIGGER `+countsTrigger(t, "delete")+` AFTER DELETE ON `+t+
				` FOR EACH ROW EXECUTE FUNCTION cp_status_count()`,
		)
	}
	return ddl
}

func (postgresDialect) beginWrite(tx *gorm.DB) error {
	if err := tx.Exec(`SELECT pg_advisory_xact_lock(?)`, int64(pgWriteLockKey)).Error; err != nil {
		return fmt.Errorf("take write lock: %w", err)
	}
	return nil
}

func (postgresDialect) endWrite(tx *gorm.DB, token string) error {
	// Delivered at commit only, and not at all on rollback.
	if err := tx.Exec(`SELECT pg_notify(?, ?)`, pgChannel, token).Error; err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}

// txNow is the time a lease is judged by inside a write transaction: on
// PostgreSQL the database's own clock, which every replica shares whatever
// its machine's clock says; elsewhere (and under a test clock) the store's.
func (s *Store) txNow(tx *gorm.DB) (time.Time, error) {
	if s.pg == nil || !s.pg.dbClock {
		return s.now(), nil
	}
	var t time.Time
	if err := tx.Raw(`SELECT clock_timestamp()`).Scan(&t).Error; err != nil {
		return time.Time{}, fmt.Errorf("read the database clock: %w", err)
	}
	return t.UTC().Truncate(time.Microsecond), nil
}

// dbNow is txNow outside a transaction (reporting a lease's holder).
func (s *Store) dbNow(ctx context.Context) time.Time {
	if s.pg == nil || !s.pg.dbClock {
		return s.now()
	}
	var t time.Time
	if err := s.db.WithContext(ctx).Raw(`SELECT clock_timestamp()`).Scan(&t).Error; err != nil {
		return s.now()
	}
	return t.UTC().Truncate(time.Microsecond)
}

// PostgreSQL error classes the store treats like SQLite's.
func pgCode(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// pgRetryable: a deadlock or serialization failure, after which the whole
// transaction may be run again (retryBusy).
func pgRetryable(err error) bool {
	c := pgCode(err)
	return c == "40001" || c == "40P01"
}

func pgUniqueViolation(err error) bool { return pgCode(err) == "23505" }

func pgDiskFull(err error) bool { return pgCode(err) == "53100" }

func pgCorrupt(err error) bool { return strings.HasPrefix(pgCode(err), "XX") }

// errPostgresBackup: the file-based backup and checks are SQLite's.
var errPostgresBackup = errors.New("use pg_dump (and pg_restore) for the postgres store")

// pgCheck is QuickCheck on PostgreSQL, which checks its own pages (and
// has amcheck for more): it reads every row of every table of the store,
// so damage a query would meet is met here first, and reports it with
// ErrCorrupt when the server classes the error as internal (XX...).
func (s *Store) pgCheck(ctx context.Context) error {
	for _, t := range []string{"meta", Task{}.TableName(), Diff{}.TableName(), Container{}.TableName(),
		ExecutionLog{}.TableName(), Lease{}.TableName(), Event{}.TableName(), countsTable} {
		var n int64
		if err := s.db.WithContext(ctx).Raw(`SELECT count(*) FROM ` + t).Scan(&n).Error; err != nil {
			if pgCorrupt(err) {
				return fmt.Errorf("store %s is damaged: %w (reading %s: %w); restore it with pg_restore from a pg_dump", s.path, ErrCorrupt, t, err)
			}
			return fmt.Errorf("check store %s: read %s: %w", s.path, t, err)
		}
	}
	return nil
}

// refusePostgresPath keeps Open from making a SQLite file named like a
// PostgreSQL URL (db_path given a DSN, or a store's Path reopened).
func refusePostgresPath(path string) error {
	if strings.HasPrefix(path, "postgres://") || strings.HasPrefix(path, "postgresql://") ||
		strings.HasPrefix(path, "postgres:/") {
		return fmt.Errorf("open store: %w: %q names a PostgreSQL database, not a SQLite file: set store.driver postgres and store.dsn", ErrInvalid, PostgresDisplayOf(path))
	}
	return nil
}

// PostgresDisplayOf is PostgresDisplay for a DSN string, or a neutral name
// when it does not parse (a DSN is never quoted whole: it may hold a password).
func PostgresDisplayOf(dsn string) string {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return "postgres://(unparsable DSN)"
	}
	return PostgresDisplay(cfg.Config)
}
