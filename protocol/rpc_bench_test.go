package protocol

import (
	"fmt"
	"testing"
)

// Benchmarks of the node-to-node messages with the shapes a loaded node
// sends most: a batch of 16 replica writes (100-byte values, 3-entry
// clocks) and its acknowledgements, and a single read and its answer.

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
