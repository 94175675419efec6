package chunkstore

// EncodeVersion1 encodes raw as a version-1 block with every frame stored
// raw, whatever its size: a block as rwxfs wrote them before version 2.
func EncodeVersion1(id BlockID, raw []byte) []byte { return forgeRaw(id, blockVersion, raw) }
