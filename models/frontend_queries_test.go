package models

import (
	"context"
	"errors"
	"testing"
)

func TestFindContainerByDockerID(t *testing.T) {
	s := newTestStore(t)
	ctx := context.Background()
	for _, c := range []Container{
		{Name: "claude-parallel-task-000000000001-r1", DockerID: "abcdef0123456789aaaa"},
		{Name: "claude-parallel-task-000000000002-r1", DockerID: "abcdef0123456789bbbb"},
		{Name: "other", DockerID: "ffff%_00"},
	} {
		c := c
		if err := s.UpsertContainer(ctx, &c); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		id, want string
	}{
		{"abcdef0123456789aaaa", "claude-parallel-task-000000000001-r1"},
		{"abcdef0123456789b", "claude-parallel-task-000000000002-r1"},
		{"abcdef012345", ""}, // ambiguous prefix
		{"ffff%", "other"},   // literal, not a wildcard
		{"%", ""},
		{"0123", ""},
	}
	for _, tc := range cases {
		got, err := s.FindContainerByDockerID(ctx, tc.id)
		if tc.want == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%q: got %v, %v; want ErrNotFound", tc.id, got, err)
			}
			continue
		}
		if err != nil || got.Name != tc.want {
			t.Errorf("%q: got %v, %v; want %s", tc.id, got, err, tc.want)
		}
	}
	if _, err := s.FindContainerByDockerID(ctx, ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty id: %v", err)
	}
}
