package protocol

import (
	"fmt"
	"testing"
)

// Benchmarks of the messages other than node RPC (rpc_bench_test.go),
// in the shapes a loaded store sends: a client batch of 16 puts with
// 100-byte values and contexts and its reply, a stored object, a causal
// context of 3 entries, a get's 3 siblings and a 5-node announcement.

var (
	benchAny     any
	benchContext string
)

func benchClientBatch() *ClientBatch {
	b := &ClientBatch{V: Version}
	for i := range 16 {
		b.Items = append(b.Items, ClientItem{Tag: uint64(1000 + i), Op: BatchPut, Key: fmt.Sprintf("users.%06d.profile", i),
			Value: make([]byte, 100), Quorum: QuorumMajority, Context: sealContext(benchObject(uint64(500 + i)).Clock)})
	}
	return b
}

func benchClientBatchReply() *ClientBatchReply {
	r := &ClientBatchReply{V: Version, From: "node-1"}
	for i := range 16 {
		r.Results = append(r.Results, ClientResult{Tag: uint64(1000 + i), Context: sealContext(benchObject(uint64(501 + i)).Clock)})
	}
	return r
}

func benchAnnounce() *Announce {
	return &Announce{V: Version, From: "node-1", Members: []string{"node-1", "node-2", "node-3", "node-4", "node-5"},
		Time: 1_717_000_000_000_000_000, Secret: "0123456789abcdef"}
}

func benchSiblings() [][]byte {
	return [][]byte{make([]byte, 100), make([]byte, 100), make([]byte, 100)}
}

// benchCodec runs the encode and decode benchmarks of one message.
func benchCodec[T any](b *testing.B, v T, enc func(T) ([]byte, error), dec func([]byte) (T, error)) {
	msg, err := enc(v)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if benchMsg, err = enc(v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(msg)))
		for b.Loop() {
			var got T
			if got, err = dec(msg); err != nil {
				b.Fatal(err)
			}
			benchAny = got
		}
	})
}

func BenchmarkClientBatch(b *testing.B) {
	benchCodec(b, benchClientBatch(), EncodeClientBatch, DecodeClientBatch)
}

func BenchmarkClientBatchReply(b *testing.B) {
	benchCodec(b, benchClientBatchReply(), EncodeClientBatchReply, DecodeClientBatchReply)
}

func BenchmarkObject(b *testing.B) { benchCodec(b, benchObject(500), EncodeObject, DecodeObject) }

func BenchmarkSiblings(b *testing.B) { benchCodec(b, benchSiblings(), EncodeSiblings, DecodeSiblings) }

func BenchmarkAnnounce(b *testing.B) { benchCodec(b, benchAnnounce(), EncodeAnnounce, DecodeAnnounce) }

func BenchmarkContext(b *testing.B) {
	c := benchObject(500).Clock
	s := testContextKey.Seal("users.000042.profile", c)
	b.Run("seal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			benchContext = testContextKey.Seal("users.000042.profile", c)
		}
	})
	b.Run("open", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(s)))
		for b.Loop() {
			got, err := testContextKey.Open("users.000042.profile", s)
			if err != nil {
				b.Fatal(err)
			}
			benchAny = got
		}
	})
}
