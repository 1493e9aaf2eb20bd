// Package tasklog is the one definition of a task run's log file, shared by
// the log follower that writes it (controllers) and the front ends that read
// it (mcp, the CLI, the dashboard): where it lives, the format of its lines,
// and how its tail is read back. It imports nothing of the controllers nor of
// Docker, so the front end may use it.
//
// A run's output is <task log dir>/<task id>/run-<n>.log, one line per output
// line:
//
//	<Docker RFC 3339 timestamp> <text>
package tasklog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// File modes: output may contain what the agent printed of its secrets.
const (
	FileMode = 0o640
	DirMode  = 0o750
)

// Path is where the output of run n of a task goes, below dir (the task log
// directory). Callers pass validated ids only.
func Path(dir, taskID string, run int) string {
	return filepath.Join(dir, taskID, "run-"+strconv.Itoa(run)+".log")
}

// Line is one stored line of a run's output.
type Line struct {
	Time time.Time
	Text string
}

// ParseLine splits a line of Docker's timestamped log stream (or of a log
// file) into the timestamp and the text. The trailing newline, if present, is
// removed from text. ok is false when the line does not start with a timestamp.
//
// Docker cuts an output line longer than PartialLogSize into entries of that
// size and, with timestamps, stamps each: the stream reads
// "TS1 <16 KiB>TS2 rest\n". ParseLine joins such a line again (the stamps of
// the later entries are dropped), so that a secret or a JSON object cut at the
// boundary is whole in the text: the redactor and the stream-json parser see
// what the agent printed.
func ParseLine(line string) (ts time.Time, text string, ok bool) {
	stamp, rest, found := strings.Cut(line, " ")
	if !found {
		// A container line that was empty comes back as the stamp alone.
		stamp, rest = strings.TrimRight(line, "\r\n"), ""
	}
	t, err := time.Parse(time.RFC3339Nano, stamp)
	if err != nil {
		return time.Time{}, "", false
	}
	return t, joinPartialEntries(strings.TrimSuffix(rest, "\n")), true
}

// StripStamp returns the text of a stored line without its timestamp, and a
// line that has none as it is. Stored lines are already whole (the follower
// joined Docker's partial entries), so nothing else is cut.
func StripStamp(line string) string {
	ts, rest, ok := strings.Cut(line, " ")
	if !ok {
		if _, err := time.Parse(time.RFC3339Nano, line); err == nil {
			return ""
		}
		return line
	}
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil {
		return line
	}
	return rest
}

// FormatLine is the stored form of one output line: Docker's stamp as it came
// (its own text, so the file holds exactly what resuming compares), a space,
// the text and a newline.
func FormatLine(stamp, text string) string {
	return stamp + " " + text + "\n"
}

// PartialLogSize is the size of the pieces Docker's log copier cuts a long
// output line into (its buffer, 16 KiB in every release so far).
const PartialLogSize = 16 << 10

// joinPartialEntries removes the stamp Docker put after every PartialLogSize
// bytes of a long line. A stamp is taken out only at those exact offsets, so
// text that merely looks like a stamp stays.
func joinPartialEntries(text string) string {
	if len(text) <= PartialLogSize {
		return text
	}
	var b strings.Builder
	for len(text) > PartialLogSize {
		n := stampLenAt(text[PartialLogSize:])
		if n == 0 {
			break
		}
		if b.Len() == 0 {
			b.Grow(len(text))
		}
		b.WriteString(text[:PartialLogSize])
		text = text[PartialLogSize+n:]
	}
	if b.Len() == 0 {
		return text
	}
	b.WriteString(text)
	return b.String()
}

// stampLenAt returns the length of the Docker stamp and the space after it at
// the start of s, or 0 when s does not start with one.
func stampLenAt(s string) int {
	const longest = len("2006-01-02T15:04:05.000000000+00:00")
	end := strings.IndexByte(s[:min(len(s), longest+1)], ' ')
	if end < len("2006-01-02T15:04:05Z") {
		return 0
	}
	if _, err := time.Parse(time.RFC3339Nano, s[:end]); err != nil {
		return 0
	}
	return end + 1
}

// Tail reading: the first amount of the file read back; it doubles until it
// covers the asked span or maxTailRead.
const (
	tailChunk   = 64 << 10
	maxTailRead = 16 << 20
)

// ReadTail parses the complete lines at the end of the first size bytes of r,
// reading back in growing chunks until they span more than span (or reach the
// file's start, or 16 MiB).
func ReadTail(r io.ReaderAt, size int64, span time.Duration) ([]Line, error) {
	for chunk := int64(tailChunk); ; chunk *= 2 {
		off := max(0, size-chunk)
		buf := make([]byte, size-off)
		if _, err := r.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if off > 0 {
			// The first line may start before the chunk: skip it.
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				buf = nil
			} else {
				buf = buf[i+1:]
			}
		}
		var lines []Line
		for _, l := range strings.Split(string(buf), "\n") {
			if ts, text, ok := ParseLine(l); ok {
				lines = append(lines, Line{Time: ts, Text: text})
			}
		}
		if off == 0 || chunk >= maxTailRead {
			return lines, nil
		}
		if len(lines) > 0 && lines[len(lines)-1].Time.Sub(lines[0].Time) > span {
			return lines, nil
		}
	}
}

// Scan calls fn with the text of every stored line of r, in order.
func Scan(r io.Reader, fn func(text string)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 8<<20)
	for sc.Scan() {
		if _, text, ok := ParseLine(sc.Text()); ok {
			fn(text)
		}
	}
	return sc.Err()
}

// OpenAppend opens (creating it and its directory) a run's log file for
// appending after dropping a trailing partial line — a line cut by a crash is
// read again from Docker — and returns it with its resulting size.
func OpenAppend(path string) (*os.File, int64, error) {
	if err := os.MkdirAll(filepath.Dir(path), DirMode); err != nil {
		return nil, 0, fmt.Errorf("create log directory: %w", err)
	}
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, FileMode)
	if err != nil {
		return nil, 0, fmt.Errorf("open task log: %w", err)
	}
	size, err := DropPartialLine(file)
	if err != nil {
		_ = file.Close()
		return nil, 0, fmt.Errorf("open task log %s: %w", path, err)
	}
	return file, size, nil
}

// DropPartialLine truncates f after its last newline and returns the
// resulting size.
func DropPartialLine(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	size := st.Size()
	if size == 0 {
		return 0, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		return 0, err
	}
	if last[0] == '\n' {
		return size, nil
	}
	// Search backwards for the previous newline.
	keep := int64(0)
	for end := size; end > 0; {
		start := max(0, end-tailChunk)
		buf := make([]byte, end-start)
		if _, err := f.ReadAt(buf, start); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			keep = start + int64(i) + 1
			break
		}
		end = start
	}
	if err := f.Truncate(keep); err != nil {
		return 0, err
	}
	return keep, nil
}
