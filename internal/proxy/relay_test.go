package proxy

import (
	"bytes"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// chunkReader returns its chunks one per Read (as a socket or a TLS record
// would), checking that everything it returned before was already written:
// the relay must never hold bytes back waiting for more input.
type chunkReader struct {
	t      *testing.T
	chunks [][]byte
	given  int
	dst    *bytes.Buffer
	sizes  []int // len(p) of each Read
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.dst.Len() != r.given {
		r.t.Fatalf("read called with %d of %d bytes written", r.dst.Len(), r.given)
	}
	r.sizes = append(r.sizes, len(p))
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; len(r.chunks[0]) == 0 {
		r.chunks = r.chunks[1:]
	}
	r.given += n
	return n, nil
}

// TestCopyBuffered: bytes arrive intact and in order; an idle-style reader
// (short reads) is read with the small buffer, a bulk one with the full
// one, and the full one is given back after a read the small one would
// have held.
func TestCopyBuffered(t *testing.T) {
	fill := func(n int, c byte) []byte { return bytes.Repeat([]byte{c}, n) }
	tests := []struct {
		name      string
		chunks    [][]byte
		wantSizes []int
	}{
		{"interactive", [][]byte{fill(10, 'a'), fill(100, 'b')}, []int{relaySmall, relaySmall}},
		{"bulk then idle", [][]byte{fill(relaySmall+relayBufSize*2+7, 'c'), fill(3, 'd')},
			// small fills → full buffer while reads fill it → short read → small again
			[]int{relaySmall, relayBufSize, relayBufSize, relayBufSize, relaySmall}},
		// A TLS reader returns at most one record per Read: after the small
		// read took the first 2 KiB of a record, the rest (14 KiB) must not
		// send the relay back to the small buffer for every record.
		{"TLS records", [][]byte{fill(relayBufSize, 'e'), fill(relayBufSize, 'f'), fill(relayBufSize, 'g'), fill(relaySmall+1, 'h'), fill(3, 'i')},
			[]int{relaySmall, relayBufSize, relayBufSize, relayBufSize, relayBufSize, relayBufSize}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []byte
			for _, c := range tt.chunks {
				want = append(want, c...)
			}
			var dst bytes.Buffer
			r := &chunkReader{t: t, chunks: tt.chunks, dst: &dst}
			copyBuffered(&dst, r)
			if !bytes.Equal(dst.Bytes(), want) {
				t.Errorf("copied %d bytes, want %d identical", dst.Len(), len(want))
			}
			if diff := cmp.Diff(tt.wantSizes, r.sizes[:len(r.sizes)-1]); diff != "" { // the last Read is the EOF
				t.Errorf("read buffer sizes (-want +got):\n%s", diff)
			}
		})
	}
}
