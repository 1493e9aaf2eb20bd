package controllers

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// parsePackageDir parses the non-test Go files of one directory.
func parsePackageDir(t *testing.T, dir string) (*token.FileSet, map[string]*ast.File) {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	if len(files) == 0 {
		t.Fatalf("no Go files in %s", dir)
	}
	return fset, files
}

// TestControllers_NoInitNoPackageRegistry: nothing under controllers/ wires
// itself in behind setup's back: no package there has an init function, and
// no function of package controllers writes a package-level variable (a
// registry that files append factories to, as diff.go, retention.go,
// targetwatch.go and diskguard.go once did). The leaf packages keep their
// process-wide tables (workspace's pinned descriptors), which wire nothing.
func TestControllers_NoInitNoPackageRegistry(t *testing.T) {
	var dirs []string
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() != "testdata" {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, dir := range dirs {
		if ents, _ := filepath.Glob(filepath.Join(dir, "*.go")); len(ents) == 0 {
			continue
		}
		fset, files := parsePackageDir(t, dir)
		inits, writes := registryViolations(fset, files)
		for _, msg := range inits {
			t.Error(msg)
		}
		if dir == "." {
			for _, msg := range writes {
				t.Error(msg)
			}
		}
		checked++
	}
	if checked < 3 { // controllers, engine, workspace at least
		t.Fatalf("checked %d packages; the walk missed the tree", checked)
	}
}

// registryViolations lists the init functions of one package and every
// write, inside a function, to one of its package-level variables.
func registryViolations(fset *token.FileSet, files map[string]*ast.File) (inits, writes []string) {
	pkgVars := map[string]bool{}
	pkgSpecs := map[*ast.ValueSpec]bool{}
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				pkgSpecs[vs] = true
				for _, n := range vs.Names {
					pkgVars[n.Name] = n.Name != "_"
				}
			}
		}
	}
	// isPkgVar: the parser resolves names within a file; a package-level
	// variable of another file stays unresolved, a local one resolves to its
	// local declaration.
	isPkgVar := func(id *ast.Ident) bool {
		if !pkgVars[id.Name] {
			return false
		}
		if id.Obj == nil {
			return true
		}
		vs, ok := id.Obj.Decl.(*ast.ValueSpec)
		return ok && pkgSpecs[vs]
	}
	for _, f := range files {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok {
				continue
			}
			if fd.Recv == nil && fd.Name.Name == "init" {
				inits = append(inits, fmt.Sprintf("%s: func init registers behind setup's back", fset.Position(fd.Pos())))
			}
			if fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				var lhs []ast.Expr
				switch st := n.(type) {
				case *ast.AssignStmt:
					lhs = st.Lhs
				case *ast.IncDecStmt:
					lhs = []ast.Expr{st.X}
				}
				for _, e := range lhs {
					if id := rootIdent(e); id != nil && isPkgVar(id) {
						writes = append(writes, fmt.Sprintf("%s: a function writes package-level variable %s (a registry?)",
							fset.Position(e.Pos()), id.Name))
					}
				}
				return true
			})
		}
	}
	return inits, writes
}

// rootIdent is the variable an assignment target starts from: x in x,
// x[k], x.f, *x.
func rootIdent(e ast.Expr) *ast.Ident {
	for {
		switch v := e.(type) {
		case *ast.Ident:
			return v
		case *ast.IndexExpr:
			e = v.X
		case *ast.SelectorExpr:
			e = v.X
		case *ast.StarExpr:
			e = v.X
		case *ast.ParenExpr:
			e = v.X
		default:
			return nil
		}
	}
}

// TestSetup_WiresEverythingTheManagerRuns: setup (setup.go) is the one place
// that adds controllers and leader-only jobs to the manager, and what it
// lists is exactly what a built System's manager runs, in order.
func TestSetup_WiresEverythingTheManagerRuns(t *testing.T) {
	fset, files := parsePackageDir(t, ".")
	consts := map[string]string{}
	for _, f := range files {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	// name resolves the name argument of a registration to its value.
	name := func(e ast.Expr) string {
		switch v := e.(type) {
		case *ast.Ident:
			if s, ok := consts[v.Name]; ok {
				return s
			}
		case *ast.BasicLit:
			if s, err := strconv.Unquote(v.Value); err == nil {
				return s
			}
		}
		t.Fatalf("%s: registration name %T is not a string constant", fset.Position(e.Pos()), e)
		return ""
	}

	var wiredControllers, wiredRunnables []string
	foundSetup := false
	for file, f := range files {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Body == nil {
				continue
			}
			inSetup := file == "setup.go" && fd.Name.Name == "setup"
			foundSetup = foundSetup || inSetup
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				var fn string
				switch f := call.Fun.(type) {
				case *ast.Ident:
					fn = f.Name
				case *ast.SelectorExpr:
					fn = f.Sel.Name
				}
				var list *[]string
				arg := 0
				switch fn {
				case "addController":
					list, arg = &wiredControllers, 1
				case "AddPeriodic", "AddIdlePeriodic", "AddRunnable":
					list = &wiredRunnables
				default:
					return true
				}
				if !inSetup {
					t.Errorf("%s: %s outside setup (setup.go): the wiring must stay in one function",
						fset.Position(call.Pos()), fn)
					return true
				}
				*list = append(*list, name(call.Args[arg]))
				return true
			})
		}
	}
	if !foundSetup {
		t.Fatal("no func setup in setup.go")
	}

	h := newHarness(t)
	st := h.s.mgr.Status()
	var running []string
	for _, c := range st.Controllers {
		running = append(running, c.Name)
	}
	if !slices.Equal(running, wiredControllers) {
		t.Errorf("manager runs controllers %q; setup lists %q", running, wiredControllers)
	}
	if !slices.Equal(st.Runnables, wiredRunnables) {
		t.Errorf("manager runs jobs %q; setup lists %q", st.Runnables, wiredRunnables)
	}
	// What the design names (DESIGN §3) is all there.
	for _, want := range []string{taskControllerName, containerControllerName, diffControllerName} {
		if !slices.Contains(running, want) {
			t.Errorf("controller %s not running (have %q)", want, running)
		}
	}
	for _, want := range []string{containerGCName, dockerEventsName, workspaceSizeName, retentionName, targetWatchName} {
		if !slices.Contains(st.Runnables, want) {
			t.Errorf("job %s not running (have %q)", want, st.Runnables)
		}
	}
}
