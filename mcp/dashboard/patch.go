package dashboard

import "strings"

// filePatch is the part of a patch about one file, ready for the viewer.
type filePatch struct {
	Path  string
	Lines []patchLine // unified
	Rows  []sideRow   // side by side
}

type patchLine struct{ Class, Text string }

// sideRow is one line of the side-by-side view: the old file left, the new
// right; a removed line and the added line that replaces it share a row.
type sideRow struct{ Left, LeftClass, Right, RightClass string }

// maxPatchLines bounds what one page renders; the rest is said to be cut.
const maxPatchLines = 5000

// splitPatch cuts a `git diff` into its files and classifies each line:
// "add", "del", "hunk" or "" (context and headers). Highlighting is done
// here, so the page needs no script for it.
func splitPatch(patch string) []filePatch {
	var out []filePatch
	total := 0
	for _, chunk := range strings.SplitAfter(patch, "\ndiff --git ") {
		chunk = strings.TrimPrefix(chunk, "diff --git ")
		chunk = strings.TrimSuffix(chunk, "\ndiff --git ")
		if strings.TrimSpace(chunk) == "" {
			continue
		}
		lines := strings.Split(strings.TrimSuffix(chunk, "\n"), "\n")
		fp := filePatch{Path: pathOf(lines[0])}
		lines[0] = "diff --git " + lines[0]
		var dels, adds []string
		flush := func() {
			for i := 0; i < max(len(dels), len(adds)); i++ {
				var r sideRow
				if i < len(dels) {
					r.Left, r.LeftClass = dels[i], "del"
				}
				if i < len(adds) {
					r.Right, r.RightClass = adds[i], "add"
				}
				fp.Rows = append(fp.Rows, r)
			}
			dels, adds = nil, nil
		}
		inHunk := false
		for _, l := range lines {
			if total++; total > maxPatchLines {
				break
			}
			class := ""
			switch {
			case strings.HasPrefix(l, "@@"):
				class, inHunk = "hunk", true
			case inHunk && strings.HasPrefix(l, "+"):
				class = "add"
			case inHunk && strings.HasPrefix(l, "-"):
				class = "del"
			}
			fp.Lines = append(fp.Lines, patchLine{Class: class, Text: l})
			switch class {
			case "add":
				adds = append(adds, l[1:])
			case "del":
				dels = append(dels, l[1:])
			case "hunk":
				flush()
				fp.Rows = append(fp.Rows, sideRow{Left: l, LeftClass: "hunk", Right: l, RightClass: "hunk"})
			default:
				flush()
				if inHunk {
					text := strings.TrimPrefix(l, " ")
					fp.Rows = append(fp.Rows, sideRow{Left: text, Right: text})
				}
			}
		}
		flush()
		out = append(out, fp)
	}
	return out
}

// pathOf reads the new path from a "a/x b/x" header (quoted names are
// shown as git wrote them).
func pathOf(header string) string {
	if i := strings.LastIndex(header, " b/"); i >= 0 {
		return header[i+3:]
	}
	return header
}
