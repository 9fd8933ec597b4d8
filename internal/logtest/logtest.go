// Package logtest holds what tests need to read logs that servers and
// background goroutines write.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is an io.Writer for log handlers that tests can read at any time:
// it is safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
