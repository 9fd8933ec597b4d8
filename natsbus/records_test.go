package natsbus

import (
	"bytes"
	"testing"

	"github.com/nats-io/nats.go"
)

// Split bodies come back whole, and a joiner never panics on parts that
// come wrong (numbering from another node is not trusted to be right).
func FuzzSplitJoin(f *testing.F) {
	f.Add([]byte(`[{"type":2}]`), uint16(4), "2/3")
	f.Add([]byte{}, uint16(1), "1/1")
	f.Fuzz(func(t *testing.T, body []byte, max uint16, stray string) {
		limit := int(max%512) + 1
		var j joiner
		var got []byte
		msgs := split("s", body, limit)
		for i, m := range msgs {
			if len(m.Data) > limit {
				t.Fatalf("part %d has %d bytes, more than %d", i, len(m.Data), limit)
			}
			out, done, err := j.add(m.Header, m.Data)
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			if done != (i == len(msgs)-1) {
				t.Fatalf("part %d of %d: done %v", i+1, len(msgs), done)
			}
			got = out
		}
		if !bytes.Equal(got, body) && !(len(got) == 0 && len(body) == 0) {
			t.Fatalf("joined %q, split %q", got, body)
		}
		h := nats.Header{}
		h.Set(hdrPart, stray)
		j.add(h, body) // any header: an error or a body, never a panic
	})
}
