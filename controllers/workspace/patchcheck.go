package workspace

import (
	"errors"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
)

// UnsafePatchError names the path for which a patch was refused.
type UnsafePatchError struct {
	Path   string
	Reason string
}

func (e *UnsafePatchError) Error() string {
	return fmt.Sprintf("unsafe patch: %q: %s", e.Path, e.Reason)
}

// Is makes errors.Is(err, ErrUnsafePatch) hold.
func (e *UnsafePatchError) Is(target error) bool { return target == ErrUnsafePatch }

func unsafePath(p, reason string) error { return &UnsafePatchError{Path: p, Reason: reason} }

// filePatch is what the check learns about one file of a patch.
type filePatch struct {
	start, end       int    // byte range of this file's part of the patch
	oldPath, newPath string // p1-stripped; "" for /dev/null
	oldMode, newMode string // from "old mode"/"deleted file mode", "new mode"/"new file mode"
	indexMode        string // mode on the "index" line when unchanged
	oldOID, newOID   string
	deleted, created bool
	renameOrCopy     bool
	copy             bool // a copy keeps its source
	binary           bool
	hunks            int
	post             []string // context and added lines: the postimage of a symlink
}

// path is the file's name after the patch (before it, for a deletion).
func (f *filePatch) path() string {
	if f.newPath != "" && !f.deleted {
		return f.newPath
	}
	return f.oldPath
}

func (f *filePatch) finalMode() string {
	switch {
	case f.newMode != "":
		return f.newMode
	case f.indexMode != "":
		return f.indexMode
	default:
		return f.oldMode
	}
}

// CheckPatch refuses a patch that could write outside the tree it is applied to or
// into its git directory: absolute paths, ".." components, any component that is a
// git directory name (".git" in any case), submodule entries, symlinks whose target
// is absolute, leaves the tree or points into a git directory, and files written
// beneath a symlink the same patch creates. Text that cannot be parsed as a git
// patch is refused too, since what we cannot read we cannot vouch for. Errors are
// *UnsafePatchError and match ErrUnsafePatch.
func CheckPatch(patch []byte) error {
	_, err := checkPatch(patch, nil)
	return err
}

// linkReader returns the current target of a symlink at a path of the apply target,
// letting Apply verify a symlink the patch renames without showing its content.
type linkReader func(p string) (string, bool)

func checkPatch(patch []byte, readLink linkReader) ([]*filePatch, error) {
	files, err := parsePatch(patch)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, unsafePath("", "no file changes in patch")
	}
	links := map[string]bool{}
	for _, f := range files {
		if f.finalMode() == "120000" && !f.deleted {
			links[f.newPath] = true
		}
	}
	for _, f := range files {
		if err := checkFile(f, links, readLink); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func checkFile(f *filePatch, links map[string]bool, readLink linkReader) error {
	p := f.path()
	if p == "" {
		return unsafePath("", "file without a name")
	}
	for _, m := range []string{f.oldMode, f.newMode, f.indexMode} {
		if m == "160000" {
			return unsafePath(p, "submodule changes are not applied")
		}
	}
	for _, name := range []string{f.oldPath, f.newPath} {
		if name == "" {
			continue
		}
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			if links[dir] {
				return unsafePath(name, "written beneath symlink "+dir+" created by the same patch")
			}
		}
	}
	if f.finalMode() != "120000" || f.deleted {
		return nil
	}
	switch {
	case f.binary:
		return unsafePath(p, "symlink given as a binary patch cannot be checked")
	case f.hunks > 0:
		return checkSymlinkTarget(p, strings.Join(f.post, "\n"))
	case f.renameOrCopy && readLink != nil:
		target, ok := readLink(f.oldPath)
		if !ok {
			return unsafePath(p, "renamed symlink cannot be read from the target")
		}
		return checkSymlinkTarget(p, target)
	case f.renameOrCopy && path.Dir(f.oldPath) == path.Dir(f.newPath):
		return nil // same directory: it resolves as it did before
	default:
		return unsafePath(p, "symlink target cannot be checked")
	}
}

// checkSymlinkTarget refuses a link at p whose target is absolute, climbs out of
// the tree or lands in a git directory, judged lexically from the link's directory.
func checkSymlinkTarget(p, target string) error {
	switch {
	case target == "" || strings.ContainsRune(target, 0):
		return unsafePath(p, "empty or invalid symlink target")
	case path.IsAbs(target):
		return unsafePath(p, "symlink to absolute path "+strconv.Quote(target))
	}
	resolved := path.Join(path.Dir(p), target)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return unsafePath(p, "symlink target "+strconv.Quote(target)+" leaves the tree")
	}
	if hasGitComponent(resolved) {
		return unsafePath(p, "symlink target "+strconv.Quote(target)+" points into a git directory")
	}
	return nil
}

// checkName validates one path as written in the patch; p1 says whether the first
// component is a/ b/ style prefix to strip.
func checkName(raw string, p1 bool) (string, error) {
	if raw == "/dev/null" {
		return "", nil
	}
	if strings.HasPrefix(raw, "/") {
		return "", unsafePath(raw, "absolute path")
	}
	name := raw
	if p1 {
		if _, rest, ok := strings.Cut(raw, "/"); ok {
			name = rest
		}
	}
	if name == "" || strings.HasPrefix(name, "/") {
		return "", unsafePath(raw, "absolute or empty path")
	}
	if strings.ContainsRune(name, 0) {
		return "", unsafePath(raw, "NUL in path")
	}
	for _, c := range strings.Split(name, "/") {
		switch {
		case c == "..":
			return "", unsafePath(raw, "parent directory component")
		case c == "" || c == ".":
			return "", unsafePath(raw, "empty or '.' component")
		case isGitName(c):
			return "", unsafePath(raw, "path inside a git directory")
		}
	}
	return name, nil
}

var hunkHeader = regexp.MustCompile(`^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@`)

// parsePatch reads a patch the way git apply does: headers are looked for on every
// line that is not inside a hunk (counted by its @@ line) or a binary block, so a
// header git would act on cannot hide from the check, while a removed line that
// happens to start with "-- " inside a hunk is not mistaken for one.
func parsePatch(patch []byte) ([]*filePatch, error) {
	const (
		inHeader = iota
		inHunk
		inBinary
	)
	var (
		files            []*filePatch
		cur              *filePatch
		state            = inHeader
		oldLeft, newLeft int
		sawOld, sawNew   bool
	)
	begin := func(offset int) {
		if cur != nil {
			cur.end = offset
			files = append(files, cur)
		}
		cur = &filePatch{start: offset}
		sawOld, sawNew = false, false
	}
	malformed := func(lineNo int, why string) error {
		return unsafePath("", fmt.Sprintf("malformed patch at line %d: %s", lineNo, why))
	}
	text := string(patch)
	offset := 0
	for lineNo := 1; offset < len(text); lineNo++ {
		line := text[offset:]
		next := len(text)
		if i := strings.IndexByte(line, '\n'); i >= 0 {
			line, next = line[:i], offset+i+1
		}
		lineStart := offset
		offset = next

		switch state {
		case inHunk:
			if oldLeft > 0 || newLeft > 0 {
				switch {
				case line == "" || line[0] == ' ':
					oldLeft--
					newLeft--
					cur.post = append(cur.post, strings.TrimPrefix(line, " "))
				case line[0] == '-':
					oldLeft--
				case line[0] == '+':
					newLeft--
					cur.post = append(cur.post, line[1:])
				case line[0] == '\\':
				default:
					return nil, malformed(lineNo, "unexpected line in hunk")
				}
				if oldLeft < 0 || newLeft < 0 {
					return nil, malformed(lineNo, "hunk longer than its header says")
				}
				continue
			}
			state = inHeader
		case inBinary:
			if !strings.HasPrefix(line, "diff --git ") {
				continue
			}
			state = inHeader
		}

		if strings.HasPrefix(line, "diff --git ") {
			begin(lineStart)
			a, b, ok, err := gitHeaderNames(line[len("diff --git "):])
			if err != nil {
				return nil, malformed(lineNo, err.Error())
			}
			if ok {
				if cur.oldPath, err = checkName(a, true); err != nil {
					return nil, err
				}
				if cur.newPath, err = checkName(b, true); err != nil {
					return nil, err
				}
			}
			continue
		}
		if strings.HasPrefix(line, "--- ") && (cur == nil || cur.hunks > 0 || sawOld) {
			begin(lineStart) // a traditional patch without a diff --git line
		}
		if cur == nil {
			continue // text before the first file, e.g. a commit message
		}
		if field, value, ok := headerField(line); ok {
			if err := cur.setField(field, value, &sawOld, &sawNew); err != nil {
				return nil, err
			}
			continue
		}
		switch {
		case strings.HasPrefix(line, "@@ "):
			m := hunkHeader.FindStringSubmatch(line)
			if m == nil {
				return nil, malformed(lineNo, "bad hunk header")
			}
			oldLeft, newLeft = count(m[2]), count(m[4])
			cur.hunks++
			state = inHunk
		case line == "GIT binary patch" || strings.HasPrefix(line, "Binary files "):
			cur.binary = true
			if line == "GIT binary patch" {
				state = inBinary
			}
		}
	}
	if state == inHunk && (oldLeft > 0 || newLeft > 0) {
		return nil, unsafePath("", "malformed patch: truncated hunk")
	}
	if cur != nil {
		cur.end = len(text)
		files = append(files, cur)
	}
	return files, nil
}

func count(s string) int {
	if s == "" {
		return 1
	}
	n, _ := strconv.Atoi(s)
	return n
}

var headerFields = []string{
	"--- ", "+++ ", "old mode ", "new mode ", "deleted file mode ", "new file mode ",
	"rename from ", "rename to ", "rename old ", "rename new ", "copy from ", "copy to ", "index ",
}

func headerField(line string) (string, string, bool) {
	for _, f := range headerFields {
		if strings.HasPrefix(line, f) {
			return f, line[len(f):], true
		}
	}
	return "", "", false
}

var indexLine = regexp.MustCompile(`^([0-9a-f]+)\.\.([0-9a-f]+)(?: ([0-7]{6}))?$`)

func (f *filePatch) setField(field, value string, sawOld, sawNew *bool) error {
	switch field {
	case "--- ", "+++ ":
		raw, err := quotedOrPlain(value, true)
		if err != nil {
			return unsafePath(value, err.Error())
		}
		name, err := checkName(raw, true)
		if err != nil {
			return err
		}
		if field == "--- " {
			*sawOld = true
			if name == "" {
				f.created = true
			} else if f.oldPath == "" {
				f.oldPath = name
			}
		} else {
			*sawNew = true
			if name == "" {
				f.deleted = true
			} else if f.newPath == "" {
				f.newPath = name
			}
		}
	case "old mode ", "deleted file mode ":
		f.oldMode = value
		f.deleted = f.deleted || field == "deleted file mode "
	case "new mode ", "new file mode ":
		f.newMode = value
		f.created = f.created || field == "new file mode "
	case "rename from ", "rename old ", "copy from ", "rename to ", "rename new ", "copy to ":
		raw, err := quotedOrPlain(value, false)
		if err != nil {
			return unsafePath(value, err.Error())
		}
		name, err := checkName(raw, false)
		if err != nil {
			return err
		}
		f.renameOrCopy = true
		f.copy = strings.HasPrefix(field, "copy")
		if strings.HasSuffix(field, "from ") || field == "rename old " {
			f.oldPath = name
		} else {
			f.newPath = name
		}
	case "index ":
		if m := indexLine.FindStringSubmatch(value); m != nil {
			f.oldOID, f.newOID, f.indexMode = m[1], m[2], m[3]
		}
	}
	if f.created {
		f.oldPath = ""
	}
	return nil
}

// quotedOrPlain reads a name that git may have C-quoted. Traditional ---/+++ names
// end at a tab (a timestamp may follow).
func quotedOrPlain(s string, tabEnds bool) (string, error) {
	if strings.HasPrefix(s, `"`) {
		name, _, err := unquoteC(s)
		return name, err
	}
	if tabEnds {
		s, _, _ = strings.Cut(s, "\t")
	}
	return s, nil
}

// gitHeaderNames splits the names of a "diff --git" line. Unquoted names can hold
// spaces, so like git it only trusts a split that yields the same name twice;
// otherwise the names come from rename/copy or ---/+++ lines.
func gitHeaderNames(rest string) (a, b string, ok bool, err error) {
	if strings.HasPrefix(rest, `"`) {
		a, r, err := unquoteC(rest)
		if err != nil || !strings.HasPrefix(r, " ") {
			return "", "", false, errors.New("bad quoted name in diff --git line")
		}
		b, err := quotedOrPlain(r[1:], false)
		return a, b, err == nil, err
	}
	if i := strings.Index(rest, ` "`); i >= 0 && strings.HasSuffix(rest, `"`) {
		b, _, err := unquoteC(rest[i+1:])
		return rest[:i], b, err == nil, err
	}
	if len(rest)%2 == 1 {
		half := len(rest) / 2
		a, b := rest[:half], rest[half+1:]
		_, ra, _ := strings.Cut(a, "/")
		_, rb, _ := strings.Cut(b, "/")
		if rest[half] == ' ' && ra == rb {
			return a, b, true, nil
		}
	}
	return "", "", false, nil
}

// unquoteC decodes a git C-quoted name starting at s[0] == '"' and returns the rest.
func unquoteC(s string) (string, string, error) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch c {
		case '"':
			return b.String(), s[i+1:], nil
		case '\\':
			i++
			if i >= len(s) {
				return "", "", errors.New("unterminated escape")
			}
			switch e := s[i]; e {
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'f':
				b.WriteByte('\f')
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'v':
				b.WriteByte('\v')
			case '\\', '"':
				b.WriteByte(e)
			case '0', '1', '2', '3':
				if i+2 >= len(s) {
					return "", "", errors.New("short octal escape")
				}
				v, err := strconv.ParseUint(s[i:i+3], 8, 8)
				if err != nil {
					return "", "", errors.New("bad octal escape")
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				return "", "", fmt.Errorf("unknown escape \\%c", e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", "", errors.New("unterminated quoted name")
}
