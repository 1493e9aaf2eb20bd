// Package procid names a process so that another process can tell, from the
// name alone, whether the named one is certainly gone. The leader lease keeps
// such a name as its holder: a server restarted after kill -9 sees that the
// holder on record was its dead predecessor on this machine and takes the
// lease at once instead of waiting for it to expire.
//
// An identity is "host:pid:random boot=B pidns=N start=S": B is the start of
// the kernel's boot id, N the inode of the process's pid namespace and S its
// start time in clock ticks after boot (/proc/PID/stat field 22). Together
// they pin one process: a pid is only compared in the same boot and pid
// namespace, and a reused pid has another start time.
package procid

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// bootIDLen is how much of the boot id goes in an identity: 48 random bits.
const bootIDLen = 12

// self describes this process; identity fields are empty where the system
// does not say (not Linux, /proc not mounted), and then nothing is judged.
type self struct {
	boot, pidns, start string
}

var (
	selfOnce sync.Once
	selfInfo self
)

func this() self {
	selfOnce.Do(func() {
		selfInfo.boot = bootID()
		selfInfo.pidns = pidNamespace("self")
		if st, err := readStat(os.Getpid()); err == nil {
			selfInfo.start = st.start
		}
	})
	return selfInfo
}

// New returns this process's identity: readable ("host:pid:random" first),
// unique per process even when a pid is reused, and judgeable by Gone.
func New() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	id := fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(b))
	if s := this(); s.boot != "" && s.pidns != "" && s.start != "" {
		id += fmt.Sprintf(" boot=%s pidns=%s start=%s", s.boot, s.pidns, s.start)
	}
	return id
}

// parsed is what Gone needs from an identity.
type parsed struct {
	pid                int
	boot, pidns, start string
}

func parse(id string) (parsed, bool) {
	head, rest, ok := strings.Cut(id, " ")
	if !ok {
		return parsed{}, false
	}
	f := strings.Split(head, ":")
	if len(f) < 3 {
		return parsed{}, false
	}
	pid, err := strconv.Atoi(f[len(f)-2])
	if err != nil || pid <= 0 {
		return parsed{}, false
	}
	p := parsed{pid: pid}
	for _, kv := range strings.Fields(rest) {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "boot":
			p.boot = v
		case "pidns":
			p.pidns = v
		case "start":
			p.start = v
		}
	}
	if p.boot == "" || p.pidns == "" || p.start == "" {
		return parsed{}, false
	}
	return p, true
}

// Gone reports whether the process named by id is certainly not running: it
// ran in this boot of this machine and in this pid namespace, and its pid now
// names no process, a zombie, or a process started at another time (the pid
// was reused). Anything it cannot be sure of — another machine or container,
// an identity without these fields, an unreadable /proc — is not gone.
func Gone(id string) bool {
	p, ok := parse(id)
	if !ok {
		return false
	}
	s := this()
	if s.boot == "" || s.pidns == "" || p.boot != s.boot || p.pidns != s.pidns {
		return false
	}
	st, err := readStat(p.pid)
	if os.IsNotExist(err) {
		return true
	}
	if err != nil {
		return false
	}
	return st.start != p.start || st.state == "Z" || st.state == "X"
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	id := strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
	if len(id) < bootIDLen {
		return ""
	}
	return id[:bootIDLen]
}

// pidNamespace returns the inode of the pid namespace of /proc/<who>, "" if
// unknown: "pid:[4026531836]" gives "4026531836".
func pidNamespace(who string) string {
	l, err := os.Readlink("/proc/" + who + "/ns/pid")
	if err != nil {
		return ""
	}
	l = strings.TrimPrefix(l, "pid:[")
	return strings.TrimSuffix(l, "]")
}

type stat struct{ state, start string }

// readStat reads the state (field 3) and start time (field 22) from
// /proc/PID/stat. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func readStat(pid int) (stat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, err
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 {
		return stat{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return stat{state: f[0], start: f[19]}, nil
}

// Alive reports whether the process named by id certainly still runs: it is
// of this boot and pid namespace, and its pid names a live (not zombie)
// process with the same start time. Anything it cannot be sure of is false.
func Alive(id string) bool {
	p, ok := parse(id)
	if !ok {
		return false
	}
	s := this()
	if s.boot == "" || s.pidns == "" || p.boot != s.boot || p.pidns != s.pidns {
		return false
	}
	st, err := readStat(p.pid)
	return err == nil && st.start == p.start && st.state != "Z" && st.state != "X"
}
