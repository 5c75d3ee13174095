package main

import (
	"os"
	"slices"
	"testing"
)

// The stages that run the loop get asyncpreemptoff=1 ahead of the user's
// GODEBUG, and keep the user's value to give back to the command.
func TestStageGodebug(t *testing.T) {
	t.Setenv("GODEBUG", "") // restored after the test
	os.Unsetenv("GODEBUG")
	if got, want := stageGodebug(), []string{"GODEBUG=asyncpreemptoff=1"}; !slices.Equal(got, want) {
		t.Errorf("without GODEBUG: stage environment %q, want %q", got, want)
	}
	os.Setenv("GODEBUG", "madvdontneed=1")
	want := []string{"GODEBUG=asyncpreemptoff=1,madvdontneed=1", envUserGodebug + "=madvdontneed=1"}
	if got := stageGodebug(); !slices.Equal(got, want) {
		t.Errorf("with GODEBUG: stage environment %q, want %q", got, want)
	}
}
