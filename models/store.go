package models

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
)

// Options tunes a Store. The zero value is ready to use; the config package
// (or a test) fills what it wants to change.
type Options struct {
	// Logger receives slow queries and database errors. Nil: silent. The store
	// never writes to stdout (it carries the MCP protocol).
	Logger *zap.Logger
	// MaxOpenConns bounds the connection pool (default 4). Reads run in
	// parallel on them; writes are serialised anyway, so more does not help.
	MaxOpenConns int
	// BusyTimeout is how long SQLite waits for another process's write lock
	// before reporting busy (default 10s).
	BusyTimeout time.Duration
	// SlowQuery is the duration above which a query is logged (default 500ms).
	SlowQuery time.Duration
	// Now is the clock used for timestamps and lease expiry (default time.Now).
	Now func() time.Time
	// Observer, when not nil, receives write latencies and busy retries
	// (see models/ops.go).
	Observer StoreObserver
}

const (
	defaultMaxOpenConns = 4
	defaultBusyTimeout  = 10 * time.Second
	defaultSlowQuery    = 500 * time.Millisecond

	// busyAttempts bounds how often a transaction is retried after SQLite
	// reported busy despite the busy timeout; with the timeout in front of
	// each attempt that is minutes of waiting, far past any sane lock holder.
	busyAttempts  = 8
	busyBaseDelay = 10 * time.Millisecond
	busyMaxDelay  = time.Second
)

// Store is the SQLite-backed state of one claude-parallel installation. It is
// safe for concurrent use, and several processes may open the same file.
type Store struct {
	path           string
	db             *gorm.DB
	sqlDB          *sql.DB
	installationID string
	now            func() time.Time
	log            *zap.Logger
	cols           columnSets
	observer       StoreObserver

	// writeSlot serialises this process's write transactions (writequeue.go).
	writeSlot writeQueue
	fileLock  *fileLock
	// The pool as write transactions begin on it (txstmts.go).
	preparedWritesOnce sync.Once
	preparedWritesPool *dbPreparedWrites
	maxOpenConns       int

	// versionConn is pinned for PRAGMA data_version, whose value is only
	// comparable on one connection. It has its own one-connection pool so it
	// never takes a slot from the readers.
	versionMu   sync.Mutex
	versionDB   *sql.DB
	versionConn *sql.Conn
	// versionStmt is PRAGMA data_version prepared once on versionConn: each
	// write looks at it after its commit, on the caller's path.
	versionStmt *sql.Stmt
	// Under versionMu: seenVersion is data_version at the last look (after
	// this store's last write, or the last DataVersion call); othersChanges
	// counts the moves this store's own writes do not explain.
	seenVersion   int64
	versionKnown  bool
	othersChanges int64
	// walProbe spares most looks the SQLite call (see walprobe.go).
	walProbe *walProbe

	// changes wakes waiters after every change this store learns of (Changed).
	changes changeSignal

	// pg is set for a store on PostgreSQL (pg_store.go), nil on SQLite.
	pg *pgState

	// The connection of the writes that need not wait for fsync, opened on
	// first use (durability.go).
	busyTimeout time.Duration
	relaxedOnce sync.Once
	relaxedDB   *gorm.DB
	relaxedSQL  *sql.DB

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store at path: it creates the parent
// directory, connects with WAL, a busy timeout, foreign keys, immediate
// transactions and synchronous=FULL, refuses a file that is not SQLite
// (ErrCorrupt) or was written by a newer schema (ErrSchemaTooNew), migrates
// the schema, and creates the installation id on first use. Besides SQLite's
// own -wal and -shm files it keeps <path>.writelock, the lock that queues
// writers from several processes (see fileLock).
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open store: %w: empty database path", ErrInvalid)
	}
	if err := refusePostgresPath(path); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	opts = opts.withDefaults()
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("open store %s: create directory: %w", abs, err)
	}
	if err := checkHeader(abs); err != nil {
		return nil, err
	}

	s := &Store{
		path:        abs,
		now:         func() time.Time { return opts.Now().UTC() },
		log:         opts.Logger,
		fileLock:    newFileLock(abs),
		observer:    opts.Observer,
		busyTimeout: opts.BusyTimeout,
	}
	dsn := buildDSN(abs, opts.BusyTimeout)
	if s.db, err = s.connect(ctx, dsn, opts); err != nil {
		return nil, openError(abs, "connect", err)
	}
	if s.sqlDB, err = s.db.DB(); err != nil {
		return nil, openError(abs, "connect", err)
	}
	// Connections are kept for the life of the store: each new one replays the
	// DSN pragmas and loses its statement cache.
	s.sqlDB.SetMaxOpenConns(opts.MaxOpenConns)
	s.sqlDB.SetMaxIdleConns(opts.MaxOpenConns)
	s.maxOpenConns = opts.MaxOpenConns
	s.sqlDB.SetConnMaxLifetime(0)
	s.sqlDB.SetConnMaxIdleTime(0)

	if err := s.init(ctx, dsn); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// connect opens the pool and its first connection under the cross-process
// write lock. That connection turns a new file to WAL, which takes an
// exclusive lock SQLite's busy handler does not wait for when two
// connections race for it (it answers SQLITE_BUSY at once rather than risk a
// deadlock): servers started together on a fresh file take turns instead.
func (s *Store) connect(ctx context.Context, dsn string, opts Options) (*gorm.DB, error) {
	unlock, err := s.fileLock.lock(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	return gorm.Open(sqlite.New(sqlite.Config{DriverName: sqlite.DriverName, DSN: dsn}), &gorm.Config{
		Logger:  newGormLogger(opts.Logger, opts.SlowQuery),
		NowFunc: s.now,
		// Every write already runs in a transaction of ours (see write).
		SkipDefaultTransaction: true,
		// Statements are prepared once per connection and kept: preparing
		// a SELECT of every column was most of a one-task read's SQLite
		// time (work_status). The cache is bounded, as lists with IN (...)
		// make a statement per length.
		PrepareStmt:        true,
		PrepareStmtMaxSize: preparedStatementsKept,
	})
}

// preparedStatementsKept bounds the statements kept prepared (least
// recently used go first): more than the store's distinct queries, fewer
// than the IN (...) lengths a long life could meet.
const preparedStatementsKept = 512

func (s *Store) init(ctx context.Context, dsn string) error {
	var err error
	if s.cols, err = parseColumnSets(s.db); err != nil {
		return fmt.Errorf("open store %s: %w", s.path, err)
	}
	if err := s.migrate(ctx); err != nil {
		return openError(s.path, "migrate", err)
	}
	if s.installationID, err = s.readMeta(ctx, metaInstallationID); err != nil {
		return openError(s.path, "read installation id", err)
	}
	if s.versionDB, err = sql.Open(sqlite.DriverName, dsn); err != nil {
		return openError(s.path, "open data_version connection", err)
	}
	s.versionDB.SetMaxOpenConns(1)
	if s.versionConn, err = s.versionDB.Conn(ctx); err != nil {
		return openError(s.path, "open data_version connection", err)
	}
	if s.versionStmt, err = s.versionConn.PrepareContext(ctx, "PRAGMA data_version"); err != nil {
		return openError(s.path, "prepare data_version", err)
	}
	s.walProbe = newWALProbe(s.path)
	return nil
}

func (o Options) withDefaults() Options {
	if o.MaxOpenConns <= 0 {
		o.MaxOpenConns = defaultMaxOpenConns
	}
	if o.BusyTimeout <= 0 {
		o.BusyTimeout = defaultBusyTimeout
	}
	if o.SlowQuery <= 0 {
		o.SlowQuery = defaultSlowQuery
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	return o
}

// buildDSN sets every connection pragma in the DSN (mattn/go-sqlite3 parameter
// names): a PRAGMA run with Exec would reach only one pooled connection.
// _txlock=immediate makes BEGIN take the write lock at once, so a transaction
// never fails upgrading a read lock. The path goes in a file: URI so '?', '#'
// and '%' in it stay part of the name.
func buildDSN(path string, busyTimeout time.Duration) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "on")
	q.Set("_txlock", "immediate")
	q.Set("_synchronous", "FULL")
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// sqliteHeader starts every SQLite 3 database file.
const sqliteHeader = "SQLite format 3\x00"

// checkHeader refuses an existing non-empty file that is not SQLite before the
// driver touches it (an empty file is a new database to SQLite).
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open store %s: %w", path, err)
	}
	defer f.Close()
	buf := make([]byte, len(sqliteHeader))
	n, err := io.ReadFull(f, buf)
	if n == 0 && (err == io.EOF || err == nil) {
		return nil
	}
	if string(buf[:n]) != sqliteHeader {
		return fmt.Errorf("open store %s: %w (no SQLite header; move the file away or point CLAUDE_PARALLEL_DB_PATH elsewhere)", path, ErrCorrupt)
	}
	return nil
}

// openError wraps an error met while opening, naming the path, and marks
// SQLite's "not a database"/"malformed" answers with ErrCorrupt.
func openError(path, step string, err error) error {
	if isCorrupt(err) {
		return fmt.Errorf("open store %s: %s: %w: %w; %s", path, step, ErrCorrupt, err, CorruptAdvice(path))
	}
	return fmt.Errorf("open store %s: %s: %w", path, step, err)
}

// Close releases every connection. It is safe to call more than once.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.pg != nil {
			s.pg.close()
		}
		if s.versionConn != nil {
			s.versionMu.Lock()
			if s.walProbe != nil {
				s.walProbe.close()
			}
			if s.versionStmt != nil {
				errs = append(errs, s.versionStmt.Close())
			}
			s.versionMu.Unlock()
			errs = append(errs, s.versionConn.Close())
		}
		if s.versionDB != nil {
			errs = append(errs, s.versionDB.Close())
		}
		if s.sqlDB != nil {
			errs = append(errs, s.sqlDB.Close())
		}
		s.relaxedOnce.Do(func() {}) // none is opened after this
		if s.relaxedSQL != nil {
			errs = append(errs, s.relaxedSQL.Close())
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("close store %s: %w", s.path, err)
		}
	})
	return s.closeErr
}

// Path is the absolute path of the database file.
func (s *Store) Path() string { return s.path }

// InstallationID is the random id created with the database; it goes on every
// container label (claude-parallel.store) so two installations never touch
// each other's containers.
func (s *Store) InstallationID() string { return s.installationID }

// DB exposes the GORM handle for ad-hoc reads (tests, diagnostics). Writes
// through it bypass the store's serialisation and invariants: use the Store
// methods for those.
func (s *Store) DB() *gorm.DB { return s.db }

// DataVersion returns a number that changes whenever some other writer —
// another process, another Store on the same file, an operator's sqlite3 —
// has committed to the database since the last call, and stays put across
// this store's own writes: those reach the controllers through their own
// wake-ups, and counting them would make every status write and lease renewal
// look like news. Poll it to notice writes made by others.
//
// SQLite's PRAGMA data_version on a pinned connection moves on every commit
// by any other connection, this store's pool included. This store reads it
// right before and right after each of its write transactions, which run
// under the cross-process write lock, so a move across the transaction is its
// own and a move between transactions is someone else's. (A writer that does
// not take the lock, like sqlite3, committing during one of this store's
// transactions goes unnoticed until the next periodic resync.)
func (s *Store) DataVersion(ctx context.Context) (int64, error) {
	if s.pg != nil {
		return s.pg.dataVersion(ctx, s)
	}
	s.versionMu.Lock()
	defer s.versionMu.Unlock()
	if s.walProbe != nil && s.versionKnown && s.walProbe.unchanged(s.walProbe.read()) {
		return s.othersChanges, nil
	}
	if err := s.lookAtVersion(ctx, false); err != nil {
		return 0, err
	}
	return s.othersChanges, nil
}

// lookAtVersion reads data_version. A move since the last look counts as
// someone else's unless own says this store's write made it. An unreadable
// version makes the next look count as a change, so a write is never missed.
// The caller holds versionMu.
func (s *Store) lookAtVersion(ctx context.Context, own bool) error {
	if s.versionConn == nil {
		return errors.New("read data_version: store is still opening")
	}
	// The WAL-index header is read before SQLite is asked, so a commit
	// between the two moves it again and the next look asks too.
	var header [walIndexHeaderSize]byte
	headerOK := false
	if s.walProbe != nil {
		header, headerOK = s.walProbe.read()
	}
	var v int64
	err := s.retryBusy(ctx, func() error {
		return s.versionStmt.QueryRowContext(ctx).Scan(&v) // prepared with versionConn, or the store did not open
	})
	if s.walProbe != nil {
		s.walProbe.record(header, headerOK && err == nil)
	}
	if err != nil {
		s.versionKnown = false
		return fmt.Errorf("read data_version: %w", err)
	}
	if !s.versionKnown || (v != s.seenVersion && !own) {
		s.othersChanges++
		s.changes.fire()
	}
	s.seenVersion, s.versionKnown = v, true
	return nil
}

// ownWrite runs a write transaction between two looks at data_version, so the
// move it makes is not taken for someone else's. The caller holds the write
// lock; without a version connection (while the store opens) it just runs.
func (s *Store) ownWrite(ctx context.Context, tx func() error) error {
	s.versionMu.Lock()
	defer s.versionMu.Unlock()
	if s.versionConn == nil {
		return tx()
	}
	// The looks ignore the caller's cancellation: a look that fails leaves
	// the version unknown, which the next look counts as someone else's
	// write, so a writer whose context ended just after its commit (a log
	// follower stopping with its container) would set off a full resync.
	look := context.WithoutCancel(ctx)
	var before error
	// Nobody committed since the last look when the -shm header has not
	// moved: then the look before needs no SQLite call.
	if !s.versionKnown || s.walProbe == nil || !s.walProbe.unchanged(s.walProbe.read()) {
		before = s.lookAtVersion(look, false)
	}
	err := tx()
	if before == nil {
		// A failed look leaves the version unknown: the next one counts.
		_ = s.lookAtVersion(look, true)
	}
	return err
}

// write runs fn in one BEGIN IMMEDIATE transaction, after the writes of this
// process queued before it. If SQLite still reports busy (another process held
// the lock past the busy timeout), the whole transaction is retried, so fn must
// have no effect outside tx: callers apply results to their objects only after
// write returns nil.
func (s *Store) write(ctx context.Context, fn func(tx *gorm.DB) error) (err error) {
	start := time.Now()
	defer func() { s.observeWrite(start, err) }()
	if err := s.writeSlot.acquire(ctx, writeClass(ctx)); err != nil {
		return err
	}
	defer s.writeSlot.release()
	unlock, err := s.fileLock.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	err = s.ownWrite(ctx, func() error {
		return s.retryBusy(ctx, func() error {
			return s.writeSession(ctx, s.writeDB(ctx)).Transaction(func(tx *gorm.DB) error {
				d := dialectOf(tx)
				if err := d.beginWrite(tx); err != nil {
					return err
				}
				if err := s.checkFence(ctx, tx); err != nil {
					return err
				}
				if writeTxHook != nil {
					writeTxHook(tx)
				}
				if err := fn(tx); err != nil {
					return err
				}
				if s.pg == nil {
					return nil
				}
				return d.endWrite(tx, s.pg.token)
			})
		})
	})
	if err == nil {
		s.changes.fire()
	}
	if err != nil && isDiskFull(err) {
		// Named here once, so every front end can say what is wrong
		// instead of passing on SQLite's bare "database or disk is full".
		return fmt.Errorf("write to store %s: %w (free space on its volume; nothing was written): %w", s.path, ErrDiskFull, err)
	}
	return err
}

// read runs a query with the same busy retry as writes (a reader can meet a
// lock while another process recovers the WAL after a crash).
func (s *Store) read(ctx context.Context, fn func(db *gorm.DB) error) error {
	return s.retryBusy(ctx, func() error { return fn(s.db.WithContext(ctx)) })
}

func (s *Store) retryBusy(ctx context.Context, op func() error) error {
	delay := busyBaseDelay
	for attempt := 1; ; attempt++ {
		err := op()
		if err == nil || !isBusy(err) || attempt >= busyAttempts {
			return err
		}
		if s.observer != nil {
			s.observer.BusyRetry()
		}
		s.log.Warn("database busy, retrying the transaction",
			zap.String("path", s.path), zap.Int("attempt", attempt), zap.Error(err))
		// Full jitter, so processes that met each other do not retry in step.
		sleep := delay/2 + rand.N(delay/2+1)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up after busy: %w)", context.Cause(ctx), err)
		case <-t.C:
		}
		delay = min(2*delay, busyMaxDelay)
	}
}
