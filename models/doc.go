// Package models holds the persistent state of claude-parallel: the GORM models
// (tasks, diffs, containers, execution logs, leases, events) and the Store that
// reads and writes them in one SQLite file shared by every server process.
//
// Every object separates its Spec (what was asked, written only by the front
// ends through Update*Spec) from its Status (what was observed, written only by
// the reconcilers through Update*Status). Each row carries a Generation, bumped
// on every spec change, and a ResourceVersion, bumped on every write. Status
// writes are compare-and-swap on ResourceVersion: a write based on a stale read
// fails with ErrConflict instead of overwriting a newer row, and the caller
// re-reads and retries (a reconcile simply requeues).
//
// Concurrency: SQLite allows one writer at a time. The Store serialises its own
// writes with an in-process semaphore and opens every transaction with BEGIN
// IMMEDIATE (so a transaction never has to upgrade a read lock, the classic
// source of SQLITE_BUSY), and waits for writers in other processes through the
// busy timeout, retrying with backoff as a last line of defence. Reads never
// block: the database runs in WAL mode.
package models
