package editdistance

import "testing"

func TestLevenshtein(t *testing.T) {
	for _, tt := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"", "abc", 3}, {"abc", "", 3}, {"kitten", "sitting", 3},
		{"no_control", "no_contrl", 1}, {"mask", "mask", 0}, {"rules", "ruels", 2},
	} {
		if got := Levenshtein(tt.a, tt.b); got != tt.want {
			t.Errorf("Levenshtein(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestClosest(t *testing.T) {
	if best, d := Closest("upstram", []string{"listen", "upstream", "route"}); best != "upstream" || d != 1 {
		t.Errorf("Closest = %q, %d", best, d)
	}
	if best, d := Closest("x", nil); best != "" || d != -1 {
		t.Errorf("Closest of nothing = %q, %d", best, d)
	}
	if best, _ := Closest("ab", []string{"ax", "ay"}); best != "ax" {
		t.Errorf("a tie went to %q, want the earlier name", best)
	}
}
