package models

import (
	"context"
	"errors"
	"fmt"

	"gorm.io/gorm"
)

// ContainerFilter selects containers for ListContainers. Zero-valued fields do not filter.
type ContainerFilter struct {
	TaskID  string
	States  []string // Docker states
	Adopted *bool
	Limit   int // 0: no limit
}

// UpsertContainer records what was observed of a container, keyed by name:
// the row is created or every observed column overwritten (Docker is the
// truth; the last observation wins). LastSeenAt defaults to now. On success
// c.ResourceVersion, c.CreatedAt and c.UpdatedAt reflect the stored row.
func (s *Store) UpsertContainer(ctx context.Context, c *Container) error {
	if c.Name == "" {
		return fmt.Errorf("upsert container: %w: empty name", ErrInvalid)
	}
	nc := *c
	now := s.now()
	if nc.LastSeenAt.IsZero() {
		nc.LastSeenAt = now
	}
	nc.UpdatedAt = now
	utcTimes(&nc)
	err := s.write(ctx, func(tx *gorm.DB) error {
		var cur Container
		err := tx.Where("name = ?", nc.Name).Take(&cur).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			nc.CreatedAt, nc.ResourceVersion = now, 1
			return tx.Create(&nc).Error
		}
		if err != nil {
			return err
		}
		nc.CreatedAt, nc.ResourceVersion = cur.CreatedAt, cur.ResourceVersion+1
		vals := columnValues(ctx, s.cols.container, &nc) // every column, zero values included
		return tx.Table(Container{}.TableName()).Where("name = ?", nc.Name).Updates(vals).Error
	})
	if err != nil {
		return fmt.Errorf("upsert container %s: %w", c.Name, err)
	}
	*c = nc
	return nil
}

// GetContainerByName returns one container row, or ErrNotFound.
func (s *Store) GetContainerByName(ctx context.Context, name string) (*Container, error) {
	c, err := readOne[Container](ctx, s, "name = ?", name)
	if err != nil {
		return nil, fmt.Errorf("get container %s: %w", name, err)
	}
	return c, nil
}

// ListContainers returns the containers matching f, by name.
func (s *Store) ListContainers(ctx context.Context, f ContainerFilter) ([]Container, error) {
	out, err := readAll[Container](ctx, s, func(db *gorm.DB) *gorm.DB {
		q := db.Model(&Container{})
		if f.TaskID != "" {
			q = q.Where("task_id = ?", f.TaskID)
		}
		if len(f.States) > 0 {
			q = whereIn(q, "state", f.States)
		}
		if f.Adopted != nil {
			q = q.Where("adopted = ?", *f.Adopted)
		}
		if f.Limit > 0 {
			q = q.Limit(f.Limit)
		}
		return q.Order("name")
	})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	return out, nil
}

// DeleteContainer removes a container's row after Docker removed it. Its
// events stay: they belong to its task's timeline and go with the task.
// ErrNotFound if absent.
func (s *Store) DeleteContainer(ctx context.Context, name string) error {
	err := s.write(ctx, func(tx *gorm.DB) error {
		return deleteExisting(tx, &Container{}, "name = ?", name)
	})
	if err != nil {
		return fmt.Errorf("delete container %s: %w", name, err)
	}
	return nil
}
