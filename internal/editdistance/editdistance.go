// Package editdistance finds the known name closest to a misspelt one, for
// error messages that say "did you mean …?" (policy files, config files).
package editdistance

// Levenshtein is the edit distance between a and b, in bytes: the fewest
// single-byte insertions, deletions and substitutions that turn a into b.
func Levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Closest returns the name in known nearest to name, and its distance; ""
// and -1 when known is empty. Ties go to the earlier name.
func Closest(name string, known []string) (string, int) {
	best, dist := "", -1
	for _, k := range known {
		if d := Levenshtein(name, k); dist < 0 || d < dist {
			best, dist = k, d
		}
	}
	return best, dist
}
