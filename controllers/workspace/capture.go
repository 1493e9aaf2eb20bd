package workspace

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"sync"
)

// DefaultMaxPatchBytes applies when CaptureOptions.MaxPatchBytes is not positive,
// so a forgotten limit never means an unbounded patch in memory.
const DefaultMaxPatchBytes int64 = 20 << 20

// CaptureOptions tunes CaptureDiff.
type CaptureOptions struct {
	MaxPatchBytes int64 // patch size limit; <= 0 means DefaultMaxPatchBytes
	RunNumber     int   // run of the task (>= 1); names the hidden ref
}

// FileStatus says how a file changed.
type FileStatus string

// File statuses. A binary file has one of these plus FileChange.Binary; a symlink
// is recognisable by mode 120000.
const (
	StatusAdded       FileStatus = "added"
	StatusModified    FileStatus = "modified"
	StatusDeleted     FileStatus = "deleted"
	StatusRenamed     FileStatus = "renamed"
	StatusModeChanged FileStatus = "mode_changed" // only the exec bit changed
	StatusTypeChanged FileStatus = "type_changed" // e.g. file became symlink
)

// FileChange is one file of a captured diff.
type FileChange struct {
	Path      string     // path after the change (before, for a deletion)
	OldPath   string     // source of a rename; "" otherwise
	Status    FileStatus // see the Status constants
	OldMode   string     // "100644", "100755", "120000"; "" when added
	NewMode   string     // "" when deleted
	Additions int        // lines; 0 for binary files
	Deletions int
	Binary    bool
}

// Diff is a captured change of a workspace.
type Diff struct {
	BaseCommit   string
	ResultCommit string // base + change, kept under Ref
	Ref          string // refs/claude-parallel/runs/<run>
	Files        []FileChange
	Additions    int
	Deletions    int
	// Patch is `git diff --binary` from base to result; nil when it exceeded the
	// limit. Size and SHA256 always describe the full patch.
	Patch  []byte
	Size   int64
	SHA256 string
}

// RunRef is the hidden ref under which run n's result commit is kept.
func RunRef(run int) string { return "refs/claude-parallel/runs/" + strconv.Itoa(run) }

// CaptureDiff records what the agent left in work/ as a commit on top of the base
// under RunRef(run) and returns its patch and per-file statistics. Capturing the
// same tree again gives the same commit and byte-identical patch (fixed identity and
// dates). It returns ErrNoChanges when the tree equals the base. When the patch is
// over the limit it returns the Diff without Patch together with an error wrapping
// ErrPatchTooLarge; the commit and ref stay so the change is not lost.
//
// The container must have stopped: work/ is read by the host as it is.
func CaptureDiff(ctx context.Context, ws *Workspace, opts CaptureOptions) (*Diff, error) {
	if ws == nil || ws.BaseCommit == "" {
		return nil, fmt.Errorf("%w: workspace not prepared", ErrInvalidSpec)
	}
	if opts.RunNumber < 1 {
		return nil, fmt.Errorf("%w: run number %d", ErrInvalidSpec, opts.RunNumber)
	}
	limit := opts.MaxPatchBytes
	if limit <= 0 {
		limit = DefaultMaxPatchBytes
	}
	g := ws.git()
	tree, baseTree, err := ws.stageAgainst(ctx, ws.BaseCommit)
	if err != nil {
		return nil, fmt.Errorf("capture %s run %d: %w", ws.TaskID, opts.RunNumber, err)
	}
	if tree == baseTree {
		return nil, ErrNoChanges
	}
	msg := fmt.Sprintf("claude-parallel %s run %d", ws.TaskID, opts.RunNumber)
	result, err := ws.commitTree(ctx, tree, ws.BaseCommit, msg)
	if err != nil {
		return nil, fmt.Errorf("capture %s run %d: %w", ws.TaskID, opts.RunNumber, err)
	}
	d := &Diff{BaseCommit: ws.BaseCommit, ResultCommit: result, Ref: RunRef(opts.RunNumber)}
	// The ref, the file list and the patch each only read the result's
	// objects: three small git processes at once rather than one after
	// another, which on a loaded machine each cost their start-up latency.
	sink := &patchSink{limit: limit, sum: sha256.New()}
	var refErr, filesErr error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, refErr = g.run(ctx, nil, "update-ref", "--no-deref", "-m", "capture", "--end-of-options", d.Ref, result)
	}()
	go func() {
		defer wg.Done()
		d.Files, filesErr = diffFiles(ctx, g, d.BaseCommit, result)
	}()
	patchErr := g.stream(ctx, nil, sink, "diff", "--binary", "--full-index", "-M", "--no-ext-diff",
		"--no-textconv", "--no-color", "--src-prefix=a/", "--dst-prefix=b/", "--end-of-options",
		d.BaseCommit, result)
	wg.Wait()
	if refErr != nil {
		return nil, fmt.Errorf("capture %s: keep result: %w", ws.TaskID, refErr)
	}
	if filesErr != nil {
		return nil, fmt.Errorf("capture %s: %w", ws.TaskID, filesErr)
	}
	// The walk never stages a git directory name; check the outcome anyway, since
	// a patch carrying one would be refused at apply time.
	for _, f := range d.Files {
		if hasGitComponent(f.Path) || hasGitComponent(f.OldPath) {
			return nil, fmt.Errorf("capture %s: staged a git directory path %q", ws.TaskID, f.Path)
		}
		d.Additions += f.Additions
		d.Deletions += f.Deletions
	}
	if patchErr != nil {
		return nil, fmt.Errorf("capture %s: %w", ws.TaskID, patchErr)
	}
	d.Size, d.SHA256 = sink.size, hex.EncodeToString(sink.sum.Sum(nil))
	if sink.size > limit {
		return d, fmt.Errorf("%w: %d bytes, limit %d; result %s kept at %s",
			ErrPatchTooLarge, sink.size, limit, result, d.Ref)
	}
	d.Patch = sink.buf.Bytes()
	return d, nil
}

// patchSink hashes and counts the whole patch but keeps it only while it fits.
type patchSink struct {
	limit int64
	size  int64
	buf   bytes.Buffer
	sum   hash.Hash
}

func (s *patchSink) Write(p []byte) (int, error) {
	s.sum.Write(p)
	s.size += int64(len(p))
	if s.size <= s.limit {
		s.buf.Write(p)
	} else if s.buf.Cap() > 0 {
		s.buf = bytes.Buffer{}
	}
	return len(p), nil
}

// diffFiles describes each changed file by zipping `diff --raw` (modes, status)
// with `diff --numstat` (line counts); both list files in the same order.
func diffFiles(ctx context.Context, g gitCmd, base, result string) ([]FileChange, error) {
	common := []string{"-z", "-M", "--no-ext-diff", "--no-textconv", "--end-of-options", base, result}
	var num []byte
	var numErr error
	counted := make(chan struct{})
	go func() {
		defer close(counted)
		num, numErr = g.run(ctx, nil, append([]string{"diff", "--numstat"}, common...)...)
	}()
	raw, err := g.run(ctx, nil, append([]string{"diff", "--raw", "--no-abbrev"}, common...)...)
	<-counted
	if err != nil {
		return nil, fmt.Errorf("list changed files: %w", err)
	}
	if numErr != nil {
		return nil, fmt.Errorf("count changed lines: %w", numErr)
	}
	files, err := parseRaw(splitNUL(raw))
	if err != nil {
		return nil, err
	}
	if err := addNumstat(files, splitNUL(num)); err != nil {
		return nil, err
	}
	return files, nil
}

// parseRaw reads `diff --raw -z`: ":<old mode> <new mode> <old oid> <new oid> <status>"
// then the path, or for renames and copies the old and the new path.
func parseRaw(tok []string) ([]FileChange, error) {
	var files []FileChange
	for i := 0; i < len(tok); {
		meta := strings.Fields(strings.TrimPrefix(tok[i], ":"))
		if !strings.HasPrefix(tok[i], ":") || len(meta) != 5 || i+1 >= len(tok) {
			return nil, fmt.Errorf("unexpected diff --raw record %q", tok[i])
		}
		f := FileChange{OldMode: mode(meta[0]), NewMode: mode(meta[1])}
		status := meta[4][0]
		if status == 'R' || status == 'C' {
			if i+2 >= len(tok) {
				return nil, fmt.Errorf("truncated diff --raw rename record")
			}
			f.OldPath, f.Path = tok[i+1], tok[i+2]
			i += 3
		} else {
			f.Path = tok[i+1]
			i += 2
		}
		switch status {
		case 'A':
			f.Status = StatusAdded
		case 'D':
			f.Status = StatusDeleted
		case 'R', 'C':
			f.Status = StatusRenamed
		case 'T':
			f.Status = StatusTypeChanged
		default:
			f.Status = StatusModified
			if meta[2] == meta[3] && f.OldMode != f.NewMode {
				f.Status = StatusModeChanged
			}
		}
		files = append(files, f)
	}
	return files, nil
}

func mode(m string) string {
	if strings.Trim(m, "0") == "" {
		return ""
	}
	return m
}

// addNumstat reads `diff --numstat -z`: "<add>\t<del>\t<path>", or for a rename
// "<add>\t<del>\t" followed by the old and new paths; "-" counts mean binary.
func addNumstat(files []FileChange, tok []string) error {
	n := 0
	for i := 0; i < len(tok); n++ {
		rec := tok[i]
		parts := strings.SplitN(rec, "\t", 3)
		if len(parts) != 3 || n >= len(files) {
			return fmt.Errorf("unexpected diff --numstat record %q", rec)
		}
		path := parts[2]
		i++
		if path == "" {
			if i+1 >= len(tok) {
				return fmt.Errorf("truncated diff --numstat rename record")
			}
			path = tok[i+1]
			i += 2
		}
		f := &files[n]
		if path != f.Path {
			return fmt.Errorf("diff --numstat lists %q where --raw lists %q", path, f.Path)
		}
		if parts[0] == "-" && parts[1] == "-" {
			f.Binary = true
			continue
		}
		var err1, err2 error
		f.Additions, err1 = strconv.Atoi(parts[0])
		f.Deletions, err2 = strconv.Atoi(parts[1])
		if err1 != nil || err2 != nil {
			return fmt.Errorf("unexpected diff --numstat counts %q", rec)
		}
	}
	if n != len(files) {
		return fmt.Errorf("diff --numstat lists %d files, --raw %d", n, len(files))
	}
	return nil
}
