package main

import "testing"

func TestFrameSizeFlag(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want frameSize
		ok   bool
	}{
		{"1280x720", frameSize{1280, 720}, true},
		{"800X600", frameSize{800, 600}, true},
		{"7680x4320", frameSize{7680, 4320}, true},
		{"10x10", frameSize{}, false},
		{"1280", frameSize{}, false},
		{"axb", frameSize{}, false},
		{"8000x600", frameSize{}, false},
		{"-1x600", frameSize{}, false},
	} {
		var f frameSize
		err := f.Set(tt.in)
		if (err == nil) != tt.ok || (tt.ok && f != tt.want) {
			t.Errorf("Set(%q) = %v, %v; want %v, ok %v", tt.in, f, err, tt.want, tt.ok)
		}
	}
}
