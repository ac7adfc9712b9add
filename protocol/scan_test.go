package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"slices"
	"strings"
	"testing"
)

// Tests of the scan op (scan.go): its fields in requests and replies,
// what the decoders refuse, the size of a record and the page budget.

func validScanRequest() *Request {
	return &Request{V: Version, From: "n1", Items: []Item{
		{Tag: 1, Op: RPCScan},
		{Tag: 2, Op: RPCScan, Partition: 17, After: "user.42", Budget: 1 << 20},
		{Tag: 3, Op: RPCScan, Partition: MaxPartitions - 1, After: strings.Repeat("k", MaxKeyLen), Budget: math.MaxInt32},
	}}
}

func validScanReply() *Reply {
	return &Reply{V: Version, From: "n2", Results: []Result{
		{Tag: 2, Recs: []Record{
			{Key: "user.43", Obj: validObject()},
			{Key: "user.44", Obj: &Object{Clock: Clock{{Node: "n1", Counter: 5}}, Siblings: []Sibling{
				{Dot: Dot{Node: "n1", Counter: 5}, Deleted: true, Time: 9}, // a tombstone
			}}},
			{Key: "user.45", Obj: &Object{Clock: Clock{{Node: "n1", Counter: 1}, {Node: "n2", Counter: 1}}, Siblings: []Sibling{
				{Dot: Dot{Node: "n1", Counter: 1}, Value: []byte("a")},
				{Dot: Dot{Node: "n2", Counter: 1}, Value: []byte("b")},
			}}},
		}, Next: "user.45"},
		{Tag: 3, Recs: []Record{{Key: "z", Obj: &Object{}}}}, // the partition's last page
		{Tag: 1}, // an empty partition
		ResultError(4, Errorf(ErrOverloaded, "scan")),
	}}
}

func TestScanRoundTrip(t *testing.T) {
	req := validScanRequest()
	b := mustEncodeRequest(t, req)
	got := checkDecodeRequest(t, b)
	if got == nil || !slices.EqualFunc(got.Items, req.Items, func(a, b Item) bool {
		return a.Tag == b.Tag && a.Op == b.Op && a.Partition == b.Partition && a.After == b.After && a.Budget == b.Budget
	}) {
		t.Fatalf("scan request changed: %+v", got)
	}
	// The first page's request leaves every scan field out: {t, o, k}.
	first, _ := EncodeRequest(&Request{V: Version, From: "n1", Items: req.Items[:1]})
	if want := mustHex(t, "83a17601a166a26e31a1699183a17401a16f04a16ba0"); !bytes.Equal(first, want) {
		t.Fatalf("first page request = %x, want %x", first, want)
	}

	rep := validScanReply()
	b, _ = EncodeReply(rep)
	gotRep := checkDecodeReply(t, b)
	if gotRep == nil {
		t.Fatal("valid scan reply refused")
	}
	b2, _ := EncodeReply(gotRep)
	if !bytes.Equal(b, b2) || len(gotRep.Results[0].Recs) != 3 || gotRep.Results[0].Next != "user.45" ||
		!gotRep.Results[0].Recs[1].Obj.Siblings[0].Deleted || gotRep.Results[1].Next != "" {
		t.Fatalf("scan reply changed: %+v", gotRep)
	}
	// Limits are inclusive.
	many := make([]Record, MaxScanRecords)
	for i := range many {
		many[i] = Record{Key: fmt.Sprintf("k%05d", i), Obj: &Object{}}
	}
	b, _ = EncodeReply(&Reply{V: Version, From: "n2", Results: []Result{{Tag: 1, Recs: many, Next: many[len(many)-1].Key}}})
	if r := checkDecodeReply(t, b); r == nil || len(r.Results[0].Recs) != MaxScanRecords {
		t.Fatal("a page of MaxScanRecords records refused")
	}
}

func TestScanRejects(t *testing.T) {
	reqCases := map[string]func(r *Request){
		"scan with a key":   func(r *Request) { r.Items[1].Key = "k" },
		"partition -1":      func(r *Request) { r.Items[1].Partition = -1 },
		"partition 65536":   func(r *Request) { r.Items[1].Partition = MaxPartitions },
		"cursor too long":   func(r *Request) { r.Items[1].After = strings.Repeat("k", MaxKeyLen+1) },
		"cursor not UTF-8":  func(r *Request) { r.Items[1].After = "\xff" },
		"cursor control":    func(r *Request) { r.Items[1].After = "a\x00" },
		"negative budget":   func(r *Request) { r.Items[1].Budget = -1 },
		"budget MinInt64":   func(r *Request) { r.Items[1].Budget = math.MinInt64 },
		"op 8":              func(r *Request) { r.Items[0].Op = 8 },
		"read with bad cur": func(r *Request) { r.Items[0] = Item{Op: RPCRead, Key: "a", After: "\xff"} },
	}
	assertRequestsRefused(t, validScanRequest, reqCases, nil)
	repCases := map[string]func(r *Reply){
		"records out of order": func(r *Reply) { recs := r.Results[0].Recs; recs[0], recs[1] = recs[1], recs[0] },
		"repeated record":      func(r *Reply) { r.Results[0].Recs[1].Key = r.Results[0].Recs[0].Key },
		"record without key":   func(r *Reply) { r.Results[0].Recs[0].Key = "" },
		"record key too long":  func(r *Reply) { r.Results[0].Recs[2].Key = strings.Repeat("k", MaxKeyLen+1) },
		"record with bad obj":  func(r *Reply) { r.Results[0].Recs[1].Obj.Siblings[0].Dot.Counter = 0 },
		"record bad clock": func(r *Reply) {
			r.Results[0].Recs[2].Obj.Clock = Clock{{Node: "b", Counter: 1}, {Node: "a", Counter: 1}}
		},
		"bad cursor": func(r *Reply) { r.Results[0].Next = "a\nb" },
		"too many records": func(r *Reply) {
			r.Results[0].Recs = make([]Record, MaxScanRecords+1)
			for i := range r.Results[0].Recs {
				r.Results[0].Recs[i] = Record{Key: fmt.Sprintf("k%05d", i), Obj: &Object{}}
			}
		},
	}
	assertRepliesRefused(t, validScanReply, repCases, nil, func(what string, b []byte) {
		assertSameDecode(t, what, b, DecodeReply, refDecodeReply, true)
	})
	// Records of another shape: {"v":1,"f":"n2","r":[{"rec":[X]}]}
	head := "83a17601a166a26e32a1729181a3726563"
	for name, rec := range map[string]string{
		"record as a map":  "9181a16ba161",
		"record of 1":      "9191a161",
		"record of 2":      "9192a161c0",
		"record of 4":      "9194a161c0c0c0",
		"nil record":       "91c0",
		"key is a number":  "919301c0c0",
		"clock is a str":   "9193a161a162c0",
		"records not list": "a161",
	} {
		if _, err := DecodeReply(mustHex(t, head+rec)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

// A page of more records than allowed, or than its bytes could hold, is
// refused before the records are allocated.
func TestScanRefusesCountsBeforeAllocating(t *testing.T) {
	head := mustHex(t, "83a17601a166a26e32a1729181a3726563") // {"v":1,"f":"n2","r":[{"rec":
	smallest := mustHex(t, "93a161c0c0")                     // ["a",nil,nil]: 5 bytes
	cases := map[string][]byte{
		"MaxScanRecords+1 records": append(append(append([]byte{}, head...), 0xdc, 0x04, 0x01), bytes.Repeat(smallest, MaxScanRecords+1)...),
		"hostile count":            append(append([]byte{}, head...), 0xdd, 0x7f, 0xff, 0xff, 0xff),
		"more than the bytes hold": append(append(append([]byte{}, head...), 0xdc, 0x03, 0xff), bytes.Repeat([]byte{0xc0}, 1023)...),
	}
	for name, b := range cases {
		if _, err := DecodeReply(b); !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: got %v", name, err)
		}
		if got := bytesPerRun(func() { _, _ = DecodeReply(b) }); got > 2048 {
			t.Errorf("%s: refusing %d bytes allocated %d bytes", name, len(b), got)
		}
	}
	// Small records, as many as allowed, are accepted (keys must
	// increase: one byte each is not enough, so two).
	b := append(append([]byte{}, head...), 0xdc, 0x04, 0x00)
	for i := range MaxScanRecords {
		b = append(b, 0x93, 0xa2, 'A'+byte(i/32), 'A'+byte(i%32), 0xc0, 0xc0)
	}
	if r, err := DecodeReply(b); err != nil || len(r.Results[0].Recs) != MaxScanRecords {
		t.Fatalf("%d small records: %v", MaxScanRecords, err)
	}
}

// TestRecordSize: Size is the exact length of a record's encoding, at
// every boundary of msgpack's forms.
func TestRecordSize(t *testing.T) {
	recs := []Record{
		{Key: "a"},
		{Key: "a", Obj: &Object{}},
		{Key: "a", Obj: &Object{Clock: Clock{}, Siblings: []Sibling{}}},
		{Key: strings.Repeat("k", MaxKeyLen), Obj: &Object{Clock: clockOfInts(), Siblings: siblingsOf(17)}},
		{Key: "m", Obj: &Object{Clock: manyDots(MaxClockEntries)}},
	}
	for _, n := range boundaryLens {
		recs = append(recs, Record{Key: strings.Repeat("k", min(max(n, 1), MaxKeyLen)), Obj: &Object{Siblings: []Sibling{
			{Dot: Dot{Node: strings.Repeat("n", min(max(n, 1), 300)), Counter: 1}, Value: make([]byte, n)},
		}}})
	}
	for _, v := range boundaryInts {
		recs = append(recs, Record{Key: "t", Obj: &Object{
			Clock:    Clock{{Node: "a", Counter: uint64(v)}},
			Siblings: []Sibling{{Dot: Dot{Node: "a", Counter: uint64(v)}, Time: v}},
		}})
	}
	rng := rand.New(rand.NewSource(propertySeed))
	for range 500 {
		recs = append(recs, Record{Key: randKey(rng), Obj: anyObject(rng)})
	}
	for i, r := range recs {
		if got, want := r.Size(), len(appendScanRecord(nil, &r)); got != want {
			t.Fatalf("record %d: Size %d, encoding %d bytes", i, got, want)
		}
	}
}

// TestScanBudgetFitsThePayload: a page whose records fill the budget,
// with the largest envelope (longest sender id, tag and cursor), fits in
// the max payload.
func TestScanBudgetFitsThePayload(t *testing.T) {
	for _, payload := range []int64{64 << 10, 1 << 20, 8 << 20} {
		budget := ScanBudget(payload)
		res := Result{Tag: math.MaxUint64}
		size := 0
		for i := 0; ; i++ {
			r := Record{Key: fmt.Sprintf("%s%06d", strings.Repeat("k", 1000), i), Obj: &Object{
				Clock:    Clock{{Node: "n1", Counter: MaxCounter}},
				Siblings: []Sibling{{Dot: Dot{Node: "n1", Counter: MaxCounter}, Value: make([]byte, 1500), Time: math.MinInt64}},
			}}
			if size+r.Size() > budget {
				break
			}
			size += r.Size()
			res.Recs = append(res.Recs, r)
		}
		res.Next = strings.Repeat("z", MaxKeyLen)
		b, _ := EncodeReply(&Reply{V: Version, From: strings.Repeat("f", MaxNodeIDLen), Results: []Result{res}})
		if int64(len(b)) > payload || size > budget {
			t.Fatalf("payload %d: %d records of %d bytes (budget %d) encode to %d bytes", payload, len(res.Recs), size, budget, len(b))
		}
		if budget-size > 3000 {
			t.Fatalf("payload %d: the page left %d of %d bytes unfilled", payload, budget-size, budget)
		}
	}
}

func TestPropertyScan(t *testing.T) {
	rng := rand.New(rand.NewSource(propertySeed))
	for i := range 100 {
		roundTripAndAbuse(t, rng, fmt.Sprint("scan request ", i), randScanRequest(rng), EncodeRequest, DecodeRequest, checkDecodeRequest)
		roundTripAndAbuse(t, rng, fmt.Sprint("scan reply ", i), randScanReply(rng), EncodeReply, DecodeReply, checkDecodeReply)
	}
	// Written as another encoder might, they decode as reflection did.
	for i := range 1000 {
		w := &wire{rng: rng}
		w.request(randScanRequest(rng))
		if _, err := DecodeRequest(w.b); err != nil {
			t.Fatalf("request %d: %v\n% x", i, err, w.b)
		}
		assertSameDecode(t, "DecodeRequest", w.b, DecodeRequest, refDecodeRequest, false)
		w.b = nil
		w.reply(randScanReply(rng))
		if _, err := DecodeReply(w.b); err != nil {
			t.Fatalf("reply %d: %v\n% x", i, err, w.b)
		}
		assertSameDecode(t, "DecodeReply", w.b, DecodeReply, refDecodeReply, false)
	}
}

// randScanRequest returns a valid request of scan items.
func randScanRequest(rng *rand.Rand) *Request {
	r := &Request{V: Version, From: randNodeID(rng)}
	for range 1 + rng.Intn(3) {
		it := Item{Tag: rng.Uint64(), Op: RPCScan}
		if rng.Intn(3) > 0 {
			it.Partition = rng.Intn(MaxPartitions)
		}
		if rng.Intn(3) > 0 {
			it.After = randKey(rng)
		}
		if rng.Intn(3) > 0 {
			it.Budget = rng.Intn(8 << 20)
		}
		r.Items = append(r.Items, it)
	}
	return r
}

// randScanReply returns a valid reply of scan pages and errors.
func randScanReply(rng *rand.Rand) *Reply {
	r := &Reply{V: Version, From: randNodeID(rng)}
	for range 1 + rng.Intn(3) {
		res := Result{Tag: rng.Uint64()}
		if rng.Intn(4) == 0 {
			r.Results = append(r.Results, ResultError(res.Tag, Errorf(ErrOverloaded, "scan")))
			continue
		}
		var keys []string
		for range rng.Intn(6) {
			keys = append(keys, randKey(rng))
		}
		slices.Sort(keys)
		for _, k := range slices.Compact(keys) {
			res.Recs = append(res.Recs, Record{Key: k, Obj: randObject(rng)})
		}
		if len(res.Recs) > 0 && rng.Intn(2) == 0 {
			res.Next = res.Recs[len(res.Recs)-1].Key
		}
		r.Results = append(r.Results, res)
	}
	return r
}
