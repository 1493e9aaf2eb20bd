package controllers

import (
	"go/ast"
	"testing"
)

// workspaceNamingRules are the functions of package workspace that compute a
// name and touch nothing — like its types and constants, the controllers may
// use them directly.
var workspaceNamingRules = map[string]bool{
	"BranchName": true, // the branch a branch-mode apply creates
	"RunRef":     true, // the hidden ref a run's capture is kept under
}

// TestControllers_WorkspaceOperationsGoThroughThePort: every git and
// workspace operation of the controllers goes through the Workspaces and
// DiffCapturer ports (ports.go, the only adapter), never straight to package
// workspace, and no code asserts a port to a wider interface — so a test's
// Workspaces sees, and can fail, everything the controllers do.
func TestControllers_WorkspaceOperationsGoThroughThePort(t *testing.T) {
	_, wsFiles := parsePackageDir(t, "workspace")
	funcs := map[string]bool{}
	for _, f := range wsFiles {
		for _, decl := range f.Decls {
			if fd, ok := decl.(*ast.FuncDecl); ok && fd.Recv == nil && ast.IsExported(fd.Name.Name) {
				funcs[fd.Name.Name] = true
			}
		}
	}
	if !funcs["Prepare"] || !funcs["Apply"] || !funcs["CaptureDiff"] {
		t.Fatalf("package workspace parsed badly: functions %v", funcs)
	}

	fset, files := parsePackageDir(t, ".")
	for file, f := range files {
		if file == "ports.go" {
			continue // the adapter over package workspace
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch v := n.(type) {
			case *ast.CallExpr:
				sel, ok := v.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "workspace" && pkg.Obj == nil &&
					funcs[sel.Sel.Name] && !workspaceNamingRules[sel.Sel.Name] {
					t.Errorf("%s: workspace.%s called directly; go through the Workspaces port (ports.go)",
						fset.Position(v.Pos()), sel.Sel.Name)
				}
			case *ast.CompositeLit:
				// A workspace built by hand is one to call methods on (Remove).
				if sel, ok := v.Type.(*ast.SelectorExpr); ok {
					if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "workspace" && sel.Sel.Name == "Workspace" {
						t.Errorf("%s: workspace.Workspace built by hand; go through the Workspaces port (ports.go)",
							fset.Position(v.Pos()))
					}
				}
			case *ast.TypeAssertExpr:
				if port := portField(v.X); port != "" {
					t.Errorf("%s: type assertion on the %s port; widen the port instead", fset.Position(v.Pos()), port)
				}
			}
			return true
		})
	}
}

// portField names the port an expression reads (x.workspaces, x.diffs,
// x.rt), or "".
func portField(e ast.Expr) string {
	if sel, ok := e.(*ast.SelectorExpr); ok {
		switch sel.Sel.Name {
		case "workspaces", "diffs", "rt":
			return sel.Sel.Name
		}
	}
	return ""
}
