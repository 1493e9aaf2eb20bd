package models

import (
	"context"
	"fmt"
	"reflect"
	"time"

	"gorm.io/gorm"
)

// Task and Diff are both versioned objects: a Spec written by front ends, a
// Status written by controllers, a Generation bumped by every spec change and
// a ResourceVersion bumped by every write. updateSpec and updateStatus hold
// those two writes once; an objectKind tells them what differs per type.

// objectKind describes one versioned object type T, with spec S and status St.
type objectKind[T, S, St any] struct {
	name  string // EventKindTask or EventKindDiff; also the noun in error messages
	table string

	head    func(*T) objectHeader
	spec    func(*T) *S
	status  func(*T) *St
	columns func(*columnSets) objectColumns

	// omitOnUpdate are the columns updateSpec leaves out when it reads the
	// current row (large content a spec change never needs).
	omitOnUpdate []string
	// cloneSpec deep-copies the slices of a spec, so that mutate cannot change
	// the current row's spec through its copy; nil when S holds none.
	cloneSpec     func(*S)
	normalizeSpec func(*S) error

	// checkStatus refuses a status the store cannot hold; deriveStatus sets
	// the status fields the store owns.
	checkStatus  func(*St) error
	deriveStatus func(st *St, now time.Time)
}

// objectHeader points at the bookkeeping fields of one object.
type objectHeader struct {
	id              string
	generation      *int64
	resourceVersion *int64
	updatedAt       *time.Time
}

// bump records a committed write at now on the object: ResourceVersion moves
// on, and Generation too when the spec changed.
func (h objectHeader) bump(specChanged bool, now time.Time) {
	if specChanged {
		*h.generation++
	}
	*h.resourceVersion++
	*h.updatedAt = now
}

// updateSpec implements Update*Spec: in one transaction it reads the object,
// calls mutate on a copy, normalizes the copy's spec and, if that differs from
// the stored one, writes the spec columns with Generation and ResourceVersion
// bumped (compare-and-swap on ResourceVersion). It returns the object as
// stored afterwards.
func updateSpec[T, S, St any](ctx context.Context, s *Store, k *objectKind[T, S, St], id string, mutate func(*T) error) (*T, error) {
	var out T
	err := s.write(ctx, func(tx *gorm.DB) error {
		var cur T
		if err := tx.Omit(k.omitOnUpdate...).Where("id = ?", id).Take(&cur).Error; err != nil {
			return notFound(err)
		}
		next := cur
		if k.cloneSpec != nil {
			k.cloneSpec(k.spec(&next))
		}
		if err := mutate(&next); err != nil {
			return err
		}
		spec := *k.spec(&next)
		if err := k.normalizeSpec(&spec); err != nil {
			return err
		}
		out = cur
		if reflect.DeepEqual(spec, *k.spec(&cur)) {
			return nil
		}
		now := s.now()
		var row T
		*k.spec(&row) = spec
		vals := columnValues(ctx, k.columns(&s.cols).spec, &row)
		vals["generation"] = gorm.Expr("generation + 1")
		vals["resource_version"] = gorm.Expr("resource_version + 1")
		vals["updated_at"] = now
		if err := casUpdate(tx, k.table, id, *k.head(&cur).resourceVersion, vals); err != nil {
			return err
		}
		*k.spec(&out) = spec
		k.head(&out).bump(true, now)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("update spec of %s %s: %w", k.name, id, err)
	}
	return &out, nil
}

// updateStatus implements Update*Status: it writes obj's status columns, with
// the derived fields set, if the row is still at obj's ResourceVersion (else
// ErrConflict or ErrNotFound), then updates obj's status, ResourceVersion and
// UpdatedAt to what was stored.
func updateStatus[T, S, St any](ctx context.Context, s *Store, k *objectKind[T, S, St], obj *T, timeline []TimelineEntry) error {
	h := k.head(obj)
	if err := k.checkStatus(k.status(obj)); err != nil {
		return fmt.Errorf("update status of %s %s: %w", k.name, h.id, err)
	}
	now := s.now()
	st := *k.status(obj)
	k.deriveStatus(&st, now)
	var row T
	*k.status(&row) = st
	vals := columnValues(ctx, k.columns(&s.cols).status, &row)
	vals["resource_version"] = gorm.Expr("resource_version + 1")
	vals["updated_at"] = now
	err := s.write(ctx, func(tx *gorm.DB) error {
		if err := casUpdate(tx, k.table, h.id, *h.resourceVersion, vals); err != nil {
			return err
		}
		for _, e := range timeline {
			kind, id := k.name, h.id
			if e.Kind != "" {
				kind, id = e.Kind, e.ObjectID
			}
			if err := recordEventTx(tx, now, kind, id, e.Reason, e.Message); err != nil {
				return fmt.Errorf("record event %s: %w", e.Reason, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update status of %s %s: %w", k.name, h.id, err)
	}
	utcTimes(&st)
	*k.status(obj) = st
	h.bump(false, now)
	return nil
}

// checkPhase refuses a phase outside its type's known values.
func checkPhase[P interface {
	~string
	Valid() bool
}](p P) error {
	if !p.Valid() {
		return fmt.Errorf("%w: unknown phase %q", ErrInvalid, p)
	}
	return nil
}
