package controllers

import "strings"

// questionFrom returns the agent's final words when they ask the user
// something (they end with a question mark), else "". The final result wins
// over the last assistant message because it is what the agent handed back.
func questionFrom(resultText, lastMessage string) string {
	final := strings.TrimSpace(resultText)
	if final == "" {
		final = strings.TrimSpace(lastMessage)
	}
	// Closing markup such as a quote or a bracket may follow the question mark.
	trimmed := strings.TrimRight(final, "\"')]*_` \t\r\n")
	if strings.HasSuffix(trimmed, "?") || strings.HasSuffix(trimmed, "？") {
		return final
	}
	return ""
}
