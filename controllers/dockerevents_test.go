package controllers

import (
	"context"
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/claude-parallel/claude-parallel/controllers/engine"
)

// eventFeed is a Watch that delivers a fixed list of events once.
type eventFeed []engine.Event

func (f eventFeed) Watch(_ context.Context, _ map[string]string, onEvent func(engine.Event), _ func()) {
	for _, ev := range f {
		onEvent(ev)
	}
}

// A container's create is no hint for anyone: the task controller that
// created it starts it next, and an inspect plus a registry write by the
// container controller would only race that start. What the container does
// afterwards (start, die) still wakes its task and the container controller.
func TestDockerEvents_CreateWakesNoOneStartAndDieWakeTaskAndContainer(t *testing.T) {
	const store, task = "store-1", "task-0123456789ab"
	name := engine.ContainerName(task, 1)
	labels := engine.Labels(store, task, 1)
	ev := func(action string) engine.Event {
		attrs := map[string]string{"name": name}
		for k, v := range labels {
			attrs[k] = v
		}
		return engine.Event{Action: action, ID: "c1", Name: name, Attributes: attrs}
	}
	for _, tc := range []struct {
		action string
		want   []string
	}{
		{"create", nil},
		{"start", []string{KindTask + "/" + task, kindContainer + "/" + name}},
		{"die", []string{KindTask + "/" + task, kindContainer + "/" + name}},
		{"destroy", []string{KindTask + "/" + task, kindContainer + "/" + name}},
	} {
		var got []string
		w := &dockerEvents{rt: eventFeed{ev(tc.action)}, storeID: store, log: zap.NewNop(),
			notify: func(kind, id string) { got = append(got, kind+"/"+id) }}
		if err := w.run(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: woke %v, want %v", tc.action, got, tc.want)
		}
	}
}
