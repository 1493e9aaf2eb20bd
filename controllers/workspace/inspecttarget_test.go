package workspace

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/claude-parallel/claude-parallel/models/gitdiscover"
)

// An apply's target is found without a git process in the plain layout,
// and whichever way it is found the answer and every refusal are those of
// git's discovery (inspectChecked): the same top, git directory and common
// directory for a plain repository, a folder below its top and a linked
// worktree (git's to discover); the same refusal for a folder whose
// repository's top lies above the allowed root, one outside the roots, and
// a folder in no repository.
func TestInspectTarget_AgreesWithGitDiscovery(t *testing.T) {
	ctx := testCtx(t)
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(base, "plain")
	reproducibleGit.NewRepo(t, plain, map[string]string{"sub/f.txt": "f\n", "a.txt": "a\n"})
	linked := filepath.Join(base, "linked")
	testGit(t, plain, "worktree", "add", "-q", linked)
	loose := filepath.Join(base, "loose")
	if err := os.MkdirAll(loose, 0o755); err != nil {
		t.Fatal(err)
	}
	outside, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(outside, "other")
	reproducibleGit.NewRepo(t, other, map[string]string{"o.txt": "o\n"})

	for _, c := range []struct {
		name     string
		dir      string
		roots    Roots
		wantFast bool
		wantErr  error
	}{
		{name: "plain top", dir: plain, roots: Roots{base}, wantFast: true},
		{name: "plain subfolder", dir: filepath.Join(plain, "sub"), roots: Roots{base}, wantFast: true},
		{name: "no roots given", dir: plain, wantFast: true},
		{name: "linked worktree", dir: linked, roots: Roots{base}},
		{name: "top above the root", dir: filepath.Join(plain, "sub"), roots: Roots{filepath.Join(plain, "sub")}, wantFast: true, wantErr: ErrOutsideAllowedRoots},
		{name: "outside the roots", dir: other, roots: Roots{base}, wantFast: true, wantErr: ErrOutsideAllowedRoots},
		{name: "no repository", dir: loose, roots: Roots{base}, wantErr: ErrNotGitWorkTree},
	} {
		t.Run(c.name, func(t *testing.T) {
			if _, _, fast := gitdiscover.PlainRepo(c.dir); fast != c.wantFast {
				t.Fatalf("plain layout %v, want %v", fast, c.wantFast)
			}
			got, gotErr := inspectTarget(ctx, c.dir, c.roots)
			defer got.close()
			want, wantErr := inspectChecked(ctx, c.dir, true, c.roots)
			defer want.close()
			if c.wantErr != nil {
				if !errors.Is(gotErr, c.wantErr) || !errors.Is(wantErr, c.wantErr) {
					t.Fatalf("errors %v and (git) %v, want %v", gotErr, wantErr, c.wantErr)
				}
				return
			}
			if gotErr != nil || wantErr != nil {
				t.Fatalf("errors %v and (git) %v", gotErr, wantErr)
			}
			if got.realTop != want.realTop || got.realGitDir != want.realGitDir ||
				got.realCommonDir() != want.realCommonDir() || got.folderRel != want.folderRel {
				t.Fatalf("found %s %s %s %s, git found %s %s %s %s",
					got.realTop, got.realGitDir, got.realCommonDir(), got.folderRel,
					want.realTop, want.realGitDir, want.realCommonDir(), want.folderRel)
			}
			// The directories are pinned: git and os.Root reach them by handle.
			for _, p := range []string{got.top, got.gitDir, got.commonDir} {
				if !pinnedFD.MatchString(p) {
					t.Fatalf("%s is not a pinned directory", p)
				}
			}
		})
	}
}

// A work folder opened for the target watch has the HEAD git's discovery
// gives, whether it was read off the file system (a loose or packed branch,
// a detached HEAD, an unborn branch) or left to git (a symbolic branch).
func TestOpenWorkFolder_HeadAgreesWithGit(t *testing.T) {
	ctx := testCtx(t)
	base, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	repo := func(name string) string {
		return reproducibleGit.NewRepo(t, filepath.Join(base, name), map[string]string{"a.txt": "a\n"})
	}
	loose := repo("loose")
	packed := repo("packed")
	testGit(t, packed, "pack-refs", "--all")
	detached := repo("detached")
	testGit(t, detached, "checkout", "-q", "--detach")
	unborn := filepath.Join(base, "unborn")
	testGit(t, base, "init", "-q", unborn)
	symbolic := repo("symbolic")
	branch := strings.TrimSpace(testGit(t, symbolic, "symbolic-ref", "--short", "HEAD"))
	testGit(t, symbolic, "symbolic-ref", "refs/heads/alias", "refs/heads/"+branch)
	testGit(t, symbolic, "symbolic-ref", "HEAD", "refs/heads/alias")

	for _, dir := range []string{loose, packed, detached, unborn, symbolic} {
		wf, err := OpenWorkFolder(ctx, dir, Roots{base})
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		want, err := inspectChecked(ctx, dir, true, Roots{base})
		if err != nil {
			wf.Close()
			t.Fatalf("%s: git: %v", dir, err)
		}
		if wf.Head() != want.head || wf.Top() != want.realTop {
			t.Errorf("%s: head %q top %s, git says %q %s", dir, wf.Head(), wf.Top(), want.head, want.realTop)
		}
		if dir != unborn && wf.Head() == "" {
			t.Errorf("%s: no head", dir)
		}
		wf.Close()
		want.close()
	}
}
