package models

import (
	"context"
	"fmt"
	"slices"

	"gorm.io/gorm"
)

// WorkFolders reads the work folder of each task of ids that exists, by id,
// two columns a row: the target watch looks at every diff awaiting a
// decision each time round and needs of its task only where the diff goes,
// not the whole row with its run progress (TasksByID).
func (s *Store) WorkFolders(ctx context.Context, ids []string) (map[string]string, error) {
	out := make(map[string]string, len(ids))
	unique := slices.Compact(slices.Sorted(slices.Values(ids)))
	// In chunks, well under SQLite's limit on bound parameters.
	for chunk := range slices.Chunk(unique, 500) {
		var rows []struct {
			ID         string
			WorkFolder string
		}
		err := s.read(ctx, func(db *gorm.DB) error {
			return whereIn(db.Table(Task{}.TableName()).Select("id, work_folder"), "id", chunk).Scan(&rows).Error
		})
		if err != nil {
			return nil, fmt.Errorf("read work folders of %d tasks: %w", len(chunk), err)
		}
		for _, r := range rows {
			out[r.ID] = r.WorkFolder
		}
	}
	return out, nil
}
