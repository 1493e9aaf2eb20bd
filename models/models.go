package models

import "time"

// Column tags spell every column name out: operators query these tables with
// sqlite3, so the names are an interface and must not follow GORM's naming
// rules if those ever change. Every non-pointer column is NOT NULL with a
// default equal to the Go zero value, so a column added by a later schema can
// be migrated onto existing rows and a NULL never has to be scanned into a
// string. Indexes are declared in schema.go, next to the queries that use them.

// Task is one coding-agent task: table background_tasks.
type Task struct {
	ID              string    `gorm:"column:id;primaryKey" json:"id"`
	Generation      int64     `gorm:"column:generation;not null;default:0" json:"generation"`            // bumped on every spec change
	ResourceVersion int64     `gorm:"column:resource_version;not null;default:0" json:"resourceVersion"` // bumped on every write
	StartTime       time.Time `gorm:"column:start_time;not null" json:"startTime"`                       // when the task was accepted (the original's meaning)
	CreatedAt       time.Time `gorm:"column:created_at;not null" json:"createdAt"`
	UpdatedAt       time.Time `gorm:"column:updated_at;not null" json:"updatedAt"`

	Spec   TaskSpec   `gorm:"embedded" json:"spec"`
	Status TaskStatus `gorm:"embedded" json:"status"`

	// Progress is what the log follower observed of the current run
	// (Status.RunNumber): read from that run's execution_logs row by the
	// store's task reads, never written through the task. Only the follower
	// writes it, so the task's status has one writer, the task controller.
	Progress TaskProgress `gorm:"-" json:"progress"`
}

// TableName keeps the original server's table name.
func (Task) TableName() string { return "background_tasks" }

// TaskProgress is the progress of a task's current run as the views show it.
type TaskProgress struct {
	LastOutputAt *time.Time `json:"lastOutputAt,omitempty"` // the run's ExecutionLog.LastLogTime
	RunProgress
}

// RunProgress is what a claude agent run reported in its stream-json output,
// kept on the run's execution_logs row by the log follower.
type RunProgress struct {
	SessionID   string  `gorm:"column:session_id;not null;default:''" json:"sessionId,omitempty"`
	NumTurns    int     `gorm:"column:num_turns;not null;default:0" json:"numTurns,omitempty"`
	CostUSD     float64 `gorm:"column:cost_usd;not null;default:0" json:"costUsd,omitempty"`
	LastMessage string  `gorm:"column:last_message;not null;default:''" json:"lastMessage,omitempty"`
	ResultText  string  `gorm:"column:result_text;not null;default:''" json:"resultText,omitempty"`
}

// TaskSpec is what was asked for a task. Only front ends write it, through
// CreateTask and UpdateTaskSpec.
type TaskSpec struct {
	Prompt             string `gorm:"column:prompt;not null;default:''" json:"prompt"`
	Description        string `gorm:"column:description;not null;default:''" json:"description,omitempty"`
	WorkFolder         string `gorm:"column:work_folder;not null;default:''" json:"workFolder"`     // absolute path of the git repository
	BaseRef            string `gorm:"column:base_ref;not null;default:''" json:"baseRef,omitempty"` // empty: the work folder as it is
	IncludeUncommitted bool   `gorm:"column:include_uncommitted;not null;default:false" json:"includeUncommitted"`
	Agent              string `gorm:"column:agent;not null;default:''" json:"agent"` // agent profile name
	MemoryBytes        int64  `gorm:"column:memory_bytes;not null;default:0" json:"memoryBytes,omitempty"`
	NanoCPUs           int64  `gorm:"column:nano_cpus;not null;default:0" json:"nanoCpus,omitempty"`
	TimeoutSeconds     int64  `gorm:"column:timeout_seconds;not null;default:0" json:"timeoutSeconds,omitempty"` // 0: the configured default

	// Priority orders admission; PriorityRank is derived from it by the store
	// (high 0, medium 1, low 2) so the admission query can ORDER BY an integer.
	Priority     Priority `gorm:"column:priority;not null;default:''" json:"priority"`
	PriorityRank int      `gorm:"column:priority_rank;not null;default:0" json:"-"`

	DependsOn    JSONList[string] `gorm:"column:depends_on;not null;default:'[]'" json:"dependsOn,omitempty"`      // task ids that must complete first
	ParentTaskID string           `gorm:"column:parent_task_id;not null;default:''" json:"parentTaskId,omitempty"` // caller's idempotency key, unique when set
	ReturnMode   string           `gorm:"column:return_mode;not null;default:''" json:"returnMode,omitempty"`

	DesiredState TaskDesiredState `gorm:"column:desired_state;not null;default:''" json:"desiredState"` // run | cancel
	CancelReason string           `gorm:"column:cancel_reason;not null;default:''" json:"cancelReason,omitempty"`

	// DesiredRuns is the number of runs asked for: 1 at creation, +1 for each
	// revision or answer. The controller starts a new run while
	// Status.RunNumber < DesiredRuns; FollowUp is the text for the newest one.
	DesiredRuns    int          `gorm:"column:desired_runs;not null;default:0" json:"desiredRuns"`
	FollowUp       string       `gorm:"column:follow_up;not null;default:''" json:"followUp,omitempty"`
	FollowUpKind   FollowUpKind `gorm:"column:follow_up_kind;not null;default:''" json:"followUpKind,omitempty"`
	RevisionOfDiff string       `gorm:"column:revision_of_diff;not null;default:''" json:"revisionOfDiff,omitempty"` // diff the newest run revises
}

// TaskStatus is what the task controller observed. Only reconcilers write it,
// through UpdateTaskStatus.
type TaskStatus struct {
	Phase TaskPhase `gorm:"column:phase;not null;default:''" json:"phase"`
	// State (column "status") and Finished are derived by the store from Phase
	// and PendingQuestion on every write; whatever a caller sets is replaced.
	State    TaskState `gorm:"column:status;not null;default:''" json:"status"`
	Finished bool      `gorm:"column:finished;not null;default:false" json:"finished"`
	Reason   string    `gorm:"column:reason;not null;default:''" json:"reason,omitempty"`   // CamelCase machine reason, e.g. "ExitCode"
	Message  string    `gorm:"column:message;not null;default:''" json:"message,omitempty"` // sentence for people

	RunNumber     int        `gorm:"column:run_number;not null;default:0" json:"runNumber"` // current (or last) run, 1-based; 0 before the first
	ContainerName string     `gorm:"column:container_name;not null;default:''" json:"containerName,omitempty"`
	ContainerID   string     `gorm:"column:container_id;not null;default:''" json:"containerId,omitempty"`
	ExitCode      *int       `gorm:"column:exit_code" json:"exitCode,omitempty"`
	RunStartedAt  *time.Time `gorm:"column:run_started_at" json:"runStartedAt,omitempty"`
	// EndTime is when the task last reached a terminal phase; the store sets it
	// if a terminal status write leaves it empty, so retention can rely on it.
	EndTime       *time.Time `gorm:"column:end_time" json:"endTime,omitempty"`
	WorkspacePath string     `gorm:"column:workspace_path;not null;default:''" json:"workspacePath,omitempty"`
	BaseCommit    string     `gorm:"column:base_commit;not null;default:''" json:"baseCommit,omitempty"` // resolved base
	DiffID        string     `gorm:"column:diff_id;not null;default:''" json:"diffId,omitempty"`         // diff of the newest run

	ObservedGeneration int64 `gorm:"column:observed_generation;not null;default:0" json:"observedGeneration"`

	// PendingQuestion is the agent's final question when a run ended asking
	// one (decided by the task controller from the run's result text).
	PendingQuestion string `gorm:"column:pending_question;not null;default:''" json:"pendingQuestion,omitempty"`
}

// Diff is the change one task run left behind: table git_diffs. The captured
// content (commits, counts, files, patch) is written once by CreateDiff and
// never changes.
type Diff struct {
	ID              string    `gorm:"column:id;primaryKey" json:"id"`
	TaskID          string    `gorm:"column:task_id;not null" json:"taskId"`
	RunNumber       int       `gorm:"column:run_number;not null;default:0" json:"runNumber"`
	Generation      int64     `gorm:"column:generation;not null;default:0" json:"generation"`
	ResourceVersion int64     `gorm:"column:resource_version;not null;default:0" json:"resourceVersion"`
	CreatedAt       time.Time `gorm:"column:created_at;not null" json:"createdAt"`
	UpdatedAt       time.Time `gorm:"column:updated_at;not null" json:"updatedAt"`

	BaseCommit   string             `gorm:"column:base_commit;not null;default:''" json:"baseCommit"`
	ResultCommit string             `gorm:"column:result_commit;not null;default:''" json:"resultCommit"`
	FilesChanged int                `gorm:"column:files_changed;not null;default:0" json:"filesChanged"`
	Additions    int                `gorm:"column:additions;not null;default:0" json:"additions"`
	Deletions    int                `gorm:"column:deletions;not null;default:0" json:"deletions"`
	Files        JSONList[DiffFile] `gorm:"column:files;not null;default:'[]'" json:"files"`
	// Patch is the `git diff --binary` output. List queries leave it out unless
	// asked (DiffFilter.WithPatch); PatchSHA256 and PatchSize are computed by
	// CreateDiff whenever Patch is set.
	Patch       []byte `gorm:"column:patch" json:"-"`
	PatchSHA256 string `gorm:"column:patch_sha256;not null;default:''" json:"patchSha256"`
	PatchSize   int64  `gorm:"column:patch_size;not null;default:0" json:"patchSize"`

	Spec   DiffSpec   `gorm:"embedded" json:"spec"`
	Status DiffStatus `gorm:"embedded" json:"status"`

	// Task exists only so AutoMigrate declares the foreign key; it is never loaded.
	Task *Task `gorm:"foreignKey:TaskID;references:ID;constraint:OnDelete:CASCADE" json:"-"`
}

// TableName keeps the original server's table name.
func (Diff) TableName() string { return "git_diffs" }

// DiffFile is one entry of Diff.Files.
type DiffFile struct {
	Path      string `json:"path"`
	OldPath   string `json:"old_path,omitempty"` // renames and copies
	Status    string `json:"status"`             // File* constants
	Additions int    `json:"additions"`
	Deletions int    `json:"deletions"`
	Binary    bool   `json:"binary,omitempty"`
}

// DiffSpec is the decision asked for on a diff. Only front ends write it.
type DiffSpec struct {
	Desired         DiffDesired `gorm:"column:desired;not null;default:''" json:"desired"`                            // pending | applied | rejected
	TargetWorkspace string      `gorm:"column:target_workspace;not null;default:''" json:"targetWorkspace,omitempty"` // empty: the task's work folder
	ApplyMode       ApplyMode   `gorm:"column:apply_mode;not null;default:''" json:"applyMode,omitempty"`             // worktree | branch
	RejectReason    string      `gorm:"column:reject_reason;not null;default:''" json:"rejectReason,omitempty"`
}

// DiffStatus is what the diff controller observed. Only reconcilers write it.
type DiffStatus struct {
	Phase DiffPhase `gorm:"column:phase;not null;default:''" json:"phase"`
	// State (column "status") is derived by the store from Phase on every write.
	State         DiffState        `gorm:"column:status;not null;default:''" json:"status"`
	Reason        string           `gorm:"column:reason;not null;default:''" json:"reason,omitempty"`
	Message       string           `gorm:"column:message;not null;default:''" json:"message,omitempty"`
	ConflictFiles JSONList[string] `gorm:"column:conflict_files;not null;default:'[]'" json:"conflictFiles,omitempty"`
	AppliedAt     *time.Time       `gorm:"column:applied_at" json:"appliedAt,omitempty"`
	AppliedTo     string           `gorm:"column:applied_to;not null;default:''" json:"appliedTo,omitempty"`
	Branch        string           `gorm:"column:branch;not null;default:''" json:"branch,omitempty"` // branch mode: the branch created
	// TargetFingerprint is what the verdict of the last dry run was reached
	// on: the target's HEAD and the state on disk of the files the diff
	// touches, taken just before that dry run. The target watch compares it
	// with the target as it is now, so a restarted server re-checks only the
	// diffs whose target moved, not every diff awaiting a decision.
	TargetFingerprint string `gorm:"column:target_fingerprint;not null;default:''" json:"-"`

	ObservedGeneration int64 `gorm:"column:observed_generation;not null;default:0" json:"observedGeneration"`
}

// Container is the registry entry of one Docker container seen by the
// controllers: table containers. It records observations only (there is no
// spec), so it is written whole by UpsertContainer.
type Container struct {
	Name            string     `gorm:"column:name;primaryKey" json:"name"` // Docker name, unique at any time
	DockerID        string     `gorm:"column:docker_id;not null;default:''" json:"dockerId"`
	TaskID          string     `gorm:"column:task_id;not null;default:''" json:"taskId,omitempty"` // from the label; may name no task of this store
	Run             int        `gorm:"column:run;not null;default:0" json:"run"`
	State           string     `gorm:"column:state;not null;default:''" json:"state"` // Docker state: created, running, exited, ...
	ExitCode        *int       `gorm:"column:exit_code" json:"exitCode,omitempty"`
	Image           string     `gorm:"column:image;not null;default:''" json:"image"`
	DockerCreatedAt *time.Time `gorm:"column:docker_created_at" json:"dockerCreatedAt,omitempty"`
	StartedAt       *time.Time `gorm:"column:started_at" json:"startedAt,omitempty"`
	FinishedAt      *time.Time `gorm:"column:finished_at" json:"finishedAt,omitempty"`
	LastSeenAt      time.Time  `gorm:"column:last_seen_at;not null" json:"lastSeenAt"`
	Adopted         bool       `gorm:"column:adopted;not null;default:false" json:"adopted"` // found running with no owning task and adopted

	ResourceVersion int64     `gorm:"column:resource_version;not null;default:0" json:"resourceVersion"`
	CreatedAt       time.Time `gorm:"column:created_at;not null" json:"createdAt"`
	UpdatedAt       time.Time `gorm:"column:updated_at;not null" json:"updatedAt"`
}

// TableName names the table.
func (Container) TableName() string { return "containers" }

// ExecutionLog is one task run's row, table execution_logs: its output file
// and the progress read from that output. The log follower is its only
// writer (UpsertExecutionLog).
type ExecutionLog struct {
	TaskID   string `gorm:"column:task_id;primaryKey" json:"taskId"`
	Run      int    `gorm:"column:run;primaryKey;autoIncrement:false" json:"run"`
	Path     string `gorm:"column:path;not null;default:''" json:"path"`
	Size     int64  `gorm:"column:size;not null;default:0" json:"size"`
	Complete bool   `gorm:"column:complete;not null;default:false" json:"complete"` // the run ended and every line is in the file
	// LastLogTime is the Docker timestamp of the last line written, so a
	// follower restarted after a crash can resume without a gap or a duplicate.
	LastLogTime *time.Time `gorm:"column:last_log_time" json:"lastLogTime,omitempty"`
	// Progress is the agent's own account of the run (stream-json profiles).
	Progress  RunProgress `gorm:"embedded" json:"progress"`
	CreatedAt time.Time   `gorm:"column:created_at;not null" json:"createdAt"`
	UpdatedAt time.Time   `gorm:"column:updated_at;not null" json:"updatedAt"`

	// Task exists only so AutoMigrate declares the foreign key; it is never loaded.
	Task *Task `gorm:"foreignKey:TaskID;references:ID;constraint:OnDelete:CASCADE" json:"-"`
}

// TableName names the table.
func (ExecutionLog) TableName() string { return "execution_logs" }

// Lease is a named lock with an expiry shared by every process on the
// database: table leases. See TryAcquireLease.
type Lease struct {
	Name       string    `gorm:"column:name;primaryKey" json:"name"`
	Holder     string    `gorm:"column:holder;not null;default:''" json:"holder"`
	AcquiredAt time.Time `gorm:"column:acquired_at;not null" json:"acquiredAt"`
	RenewedAt  time.Time `gorm:"column:renewed_at;not null" json:"renewedAt"`
	DurationMS int64     `gorm:"column:duration_ms;not null;default:0" json:"durationMs"`
}

// TableName names the table.
func (Lease) TableName() string { return "leases" }

// Event is one line of the audit trail: table events.
type Event struct {
	ID       int64     `gorm:"column:id;primaryKey;autoIncrement" json:"id"`
	Time     time.Time `gorm:"column:time;not null" json:"time"`
	Kind     string    `gorm:"column:kind;not null;default:''" json:"kind"` // EventKind* constants
	ObjectID string    `gorm:"column:object_id;not null;default:''" json:"objectId"`
	Reason   string    `gorm:"column:reason;not null;default:''" json:"reason"`
	Message  string    `gorm:"column:message;not null;default:''" json:"message"`
}

// TableName names the table.
func (Event) TableName() string { return "events" }

// metaRow is one key of table meta (schema_version, installation_id, created_at).
type metaRow struct {
	Key   string `gorm:"column:key;primaryKey"`
	Value string `gorm:"column:value;not null;default:''"`
}

func (metaRow) TableName() string { return "meta" }
