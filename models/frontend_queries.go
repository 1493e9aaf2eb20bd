package models

import (
	"context"
	"fmt"

	"gorm.io/gorm"
)

// FindContainerByDockerID returns the container whose Docker id is id or
// starts with it (Docker prints 12-character short ids), or ErrNotFound. A
// prefix shared by several containers is ErrNotFound too: the caller must
// give more of the id. Front ends use it to resolve an identifier a person
// copied from `docker ps`.
func (s *Store) FindContainerByDockerID(ctx context.Context, id string) (*Container, error) {
	if id == "" {
		return nil, fmt.Errorf("find container: %w: empty docker id", ErrInvalid)
	}
	var found []Container
	err := s.read(ctx, func(db *gorm.DB) error {
		// substr instead of LIKE: the id is compared literally, so no
		// character in it can act as a wildcard.
		return db.Where("substr(docker_id, 1, ?) = ?", len(id), id).Limit(2).Find(&found).Error
	})
	if err != nil {
		return nil, fmt.Errorf("find container %s: %w", id, err)
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("find container %s: %w", id, ErrNotFound)
	}
	return &found[0], nil
}

// ContainerCounts are the registered containers counted by what status shows.
type ContainerCounts struct {
	Managed, Running, Adopted int64
}

// CountContainers counts the registered containers in one aggregate query,
// so system_status reads no rows into memory.
func (s *Store) CountContainers(ctx context.Context) (ContainerCounts, error) {
	var out ContainerCounts
	err := s.read(ctx, func(db *gorm.DB) error {
		return db.Table(Container{}.TableName()).
			Select("count(*) AS managed, coalesce(sum(state = 'running'), 0) AS running, coalesce(sum(adopted <> 0), 0) AS adopted").
			Scan(&out).Error
	})
	if err != nil {
		return ContainerCounts{}, fmt.Errorf("count containers: %w", err)
	}
	return out, nil
}
