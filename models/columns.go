package models

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// columnSets holds, per object, the columns of its Spec and of its Status.
// They are derived from the struct definitions, so a field added to TaskSpec
// or TaskStatus is written by the right Update* call without a column list to
// keep in step by hand.
type columnSets struct {
	task, diff objectColumns
	container  []*schema.Field // every column but the key and created_at
}

// objectColumns are the Spec and the Status columns of one object type.
type objectColumns struct {
	spec, status []*schema.Field
}

func parseColumnSets(db *gorm.DB) (columnSets, error) {
	var cs columnSets
	cache := &sync.Map{}
	task, err := schema.Parse(&Task{}, cache, db.NamingStrategy)
	if err != nil {
		return cs, fmt.Errorf("parse task schema: %w", err)
	}
	diff, err := schema.Parse(&Diff{}, cache, db.NamingStrategy)
	if err != nil {
		return cs, fmt.Errorf("parse diff schema: %w", err)
	}
	container, err := schema.Parse(&Container{}, cache, db.NamingStrategy)
	if err != nil {
		return cs, fmt.Errorf("parse container schema: %w", err)
	}
	for _, f := range container.Fields {
		if f.DBName != "" && f.DBName != "name" && f.DBName != "created_at" {
			cs.container = append(cs.container, f)
		}
	}
	cs.task = objectColumns{spec: fieldsUnder(task, "Spec"), status: fieldsUnder(task, "Status")}
	cs.diff = objectColumns{spec: fieldsUnder(diff, "Spec"), status: fieldsUnder(diff, "Status")}
	return cs, nil
}

// fieldsUnder returns the columns of the embedded struct field named top.
func fieldsUnder(s *schema.Schema, top string) []*schema.Field {
	var out []*schema.Field
	for _, f := range s.Fields {
		if f.DBName != "" && len(f.BindNames) > 1 && f.BindNames[0] == top {
			out = append(out, f)
		}
	}
	return out
}

// columnValues reads the given columns from obj (a pointer to the model) into
// a map for Updates: a map writes zero values, which Updates(struct) would skip.
func columnValues(ctx context.Context, fields []*schema.Field, obj any) map[string]any {
	rv := reflect.ValueOf(obj).Elem()
	m := make(map[string]any, len(fields)+4)
	for _, f := range fields {
		v, _ := f.ValueOf(ctx, rv)
		m[f.DBName] = utcValue(v)
	}
	return m
}

// utcValue converts times to UTC so that stored text compares chronologically.
func utcValue(v any) any {
	switch t := v.(type) {
	case time.Time:
		return t.UTC()
	case *time.Time:
		if t == nil {
			return nil
		}
		u := t.UTC()
		return &u
	}
	return v
}

// utcTimes rewrites every time.Time and *time.Time field of the struct obj
// points to (recursing into embedded structs) to UTC, before a GORM Create.
func utcTimes(obj any) {
	utcStruct(reflect.ValueOf(obj).Elem())
}

func utcStruct(v reflect.Value) {
	for i := range v.NumField() {
		f := v.Field(i)
		if !f.CanSet() {
			continue
		}
		switch x := f.Interface().(type) {
		case time.Time:
			f.Set(reflect.ValueOf(x.UTC()))
		case *time.Time:
			if x != nil {
				u := x.UTC()
				f.Set(reflect.ValueOf(&u))
			}
		default:
			if f.Kind() == reflect.Struct {
				utcStruct(f)
			}
		}
	}
}
