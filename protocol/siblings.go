package protocol

import "math"

// The siblings payload: a get reply of the client API whose key has
// several live values (its Kvmesh-Siblings header says how many) carries
// them as the msgpack array of the values; a reply with one value carries
// it raw. Batched gets carry their values in ClientResult.Values instead.

// EncodeSiblings is the payload of a get reply with several values: the
// msgpack array of the values, nil for a nil slice or a nil value.
func EncodeSiblings(values [][]byte) ([]byte, error) {
	return encode(values, appendSiblings), nil
}

// DecodeSiblings parses the payload EncodeSiblings made.
func DecodeSiblings(b []byte) ([][]byte, error) {
	d := decoder{b: b, what: "siblings"}
	return decodeMessage(&d, d.siblings)
}

func appendSiblings(b []byte, values [][]byte) []byte {
	return appendList(b, values, appendBinOrNilElem)
}

// siblingValues takes any count of values the bytes can hold, as
// reflection did: a get may return every live sibling of a merge.
var siblingValues = listSpec{name: "values", minSize: 1, max: math.MaxInt}

func (d *decoder) siblings() ([][]byte, error) { return decodeList(d, siblingValues, d.bytesElem) }
