package testutil

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// ProcStatusKB reads the figures /proc/<pid>/status gives in kB (VmRSS,
// VmHWM, RssAnon, RssFile, ...) by name without the colon; pid 0 is this
// process.
func ProcStatusKB(pid int) (map[string]int64, error) {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for line := range strings.Lines(string(raw)) {
		f := strings.Fields(line)
		if len(f) != 3 || f[2] != "kB" {
			continue
		}
		if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
			out[strings.TrimSuffix(f[0], ":")] = kb
		}
	}
	return out, nil
}
