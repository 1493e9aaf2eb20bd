package service

import (
	"strings"
	"unicode/utf8"
)

// A tool result carries its content twice, as markdown text and as
// structured JSON, and Claude Code replaces any result above 25,000 tokens
// with an error. Large content (a patch, log lines, a list) is therefore
// cut to maxContentChars per copy, measured as JSON-escaped characters, so
// a whole default result stays under about 60,000 characters; the reply
// says what was cut and which argument fetches the rest.
const maxContentChars = 20_000

// jsonLen is the length of s once encoded as a JSON string by
// encoding/json (without the quotes): control characters, quotes,
// backslashes, <, >, & and invalid bytes take more than themselves.
func jsonLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\' || c == '\n' || c == '\r' || c == '\t':
				n += 2
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				n += 6
			default:
				n++
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			n += 6
		case r == '\u2028' || r == '\u2029':
			n += 6
		default:
			n += size
		}
		i += size
	}
	return n
}

// chunkAt returns the part of s from offset whose JSON length is at most
// budget, ending at a line end when at least one whole line fits, and the
// offset after it (len(s) when the rest fits).
func chunkAt(s string, offset, budget int) (string, int) {
	offset = min(max(offset, 0), len(s))
	rest := s[offset:]
	if jsonLen(rest) <= budget {
		return rest, len(s)
	}
	end, used, lastLine := 0, 0, -1
	for end < len(rest) {
		r, size := utf8.DecodeRuneInString(rest[end:])
		c := jsonLen(rest[end : end+size])
		if used+c > budget {
			break
		}
		used += c
		end += size
		if r == '\n' {
			lastLine = end
		}
	}
	if lastLine > 0 {
		end = lastLine
	}
	if end == 0 { // a budget below one character: still make progress
		_, end = utf8.DecodeRuneInString(rest)
	}
	return rest[:end], offset + end
}

// filePatch finds the section of a git patch that changes path ("diff --git
// a/<old> b/<path>" up to the next such line); ok is false when no section
// names it.
func filePatch(patch, path string) (section string, ok bool) {
	for start := 0; start < len(patch); {
		end := strings.Index(patch[start+1:], "\ndiff --git ")
		if end < 0 {
			end = len(patch)
		} else {
			end += start + 2
		}
		sec := patch[start:end]
		header, _, _ := strings.Cut(sec, "\n")
		if strings.HasPrefix(header, "diff --git a/"+path+" ") || strings.HasSuffix(header, " b/"+path) {
			return sec, true
		}
		start = end
	}
	return "", false
}
