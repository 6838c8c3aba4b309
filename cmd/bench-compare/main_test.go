package main

import "testing"

// TestAboveFloorPairsRounds: credgate's own CPU is each round's figure
// less the floor's of that round; a round in which the machine was slow
// for both must not count as credgate work (median minus median would say
// 20 here, not 100).
func TestAboveFloorPairsRounds(t *testing.T) {
	if d, ok := aboveFloor([]float64{300, 200, 210}, []float64{200, 100, 190}); !ok || d != 100 {
		t.Fatalf("above the floor: %v %v; want 100", d, ok)
	}
	if _, ok := aboveFloor([]float64{300}, nil); ok {
		t.Fatal("a read with no floor in its rounds has a figure above it")
	}
}
