package protocol

import (
	"bytes"
	"fmt"
	"testing"
)

// Benchmarks of every codec. First the node-to-node messages, in the
// shapes a loaded node sends most: a batch of 16 replica writes (100-byte
// values, 3-entry clocks) and its acknowledgements, and a single read and
// its answer.

func benchObject(counter uint64) *Object {
	clock := Clock{{Node: "node-1", Counter: counter}, {Node: "node-2", Counter: 41}, {Node: "node-3", Counter: 7}}
	return &Object{Clock: clock, Siblings: []Sibling{{
		Dot:   Dot{Node: "node-1", Counter: counter},
		Value: make([]byte, 100),
		Time:  1_717_000_000_000_000_000,
	}}}
}

func benchRequests() map[string]*Request {
	writes := &Request{V: Version, From: "node-1"}
	for i := range 16 {
		writes.Items = append(writes.Items, Item{
			Tag: uint64(1000 + i),
			Op:  RPCWrite,
			Key: fmt.Sprintf("users.%06d.profile", i),
			Obj: benchObject(uint64(500 + i)),
		})
	}
	read := &Request{V: Version, From: "node-1", Items: []Item{{Tag: 7, Op: RPCRead, Key: "users.000042.profile"}}}
	return map[string]*Request{"write16": writes, "read1": read}
}

func benchReplies() map[string]*Reply {
	acks := &Reply{V: Version, From: "node-2"}
	for i := range 16 {
		acks.Results = append(acks.Results, Result{Tag: uint64(1000 + i)})
	}
	read := &Reply{V: Version, From: "node-2", Results: []Result{{Tag: 7, Obj: benchObject(500)}}}
	return map[string]*Reply{"ack16": acks, "read1": read}
}

// Sinks keep the results on the heap, as they are when sent.
var (
	benchMsg     []byte
	benchRequest *Request
	benchReply   *Reply
)

func BenchmarkEncodeRequest(b *testing.B) {
	for _, name := range []string{"write16", "read1"} {
		r := benchRequests()[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if benchMsg, err = EncodeRequest(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeRequest(b *testing.B) {
	for _, name := range []string{"write16", "read1"} {
		msg, err := EncodeRequest(benchRequests()[name])
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if benchRequest, err = DecodeRequest(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkEncodeReply(b *testing.B) {
	for _, name := range []string{"ack16", "read1"} {
		r := benchReplies()[name]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if benchMsg, err = EncodeReply(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecodeReply(b *testing.B) {
	for _, name := range []string{"ack16", "read1"} {
		msg, err := EncodeReply(benchReplies()[name])
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(msg)))
			for b.Loop() {
				if benchReply, err = DecodeReply(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Benchmarks of the other messages, in the shapes a loaded store sends: a client batch of 16 puts with
// 100-byte values and contexts and its reply, a stored object, a causal
// context of 3 entries, a get's 3 siblings and a 5-node heartbeat with every record.

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

func benchHeartbeat() *Heartbeat {
	h := &Heartbeat{V: Version, From: "node-1", Time: 1_717_000_000_000_000_000, Secret: "0123456789abcdef",
		Digest: bytes.Repeat([]byte{7}, digestLen), Sig: bytes.Repeat([]byte{9}, sigLen)}
	for _, id := range []string{"node-1", "node-2", "node-3", "node-4", "node-5"} {
		h.Records = append(h.Records, MemberRecord{V: Version, ID: id, Key: testNodeKey, Client: "nats://10.0.0.1:4222",
			Route: "nats-route://10.0.0.1:6222", Status: MemberUp, Incarnation: 1, Version: 3, Sig: bytes.Repeat([]byte{1}, sigLen)})
	}
	return h
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

func BenchmarkHeartbeat(b *testing.B) {
	benchCodec(b, benchHeartbeat(), EncodeHeartbeat, DecodeHeartbeat)
}

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

func BenchmarkDecodeObject(b *testing.B) {
	o := &Object{Clock: Clock{{Node: "n1", Counter: 7}, {Node: "n2", Counter: 3}},
		Siblings: []Sibling{{Dot: Dot{Node: "n1", Counter: 7}, Value: make([]byte, 100), Time: 1}}}
	rec, _ := EncodeObject(o)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeObject(rec); err != nil {
			b.Fatal(err)
		}
	}
}
