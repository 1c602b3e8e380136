/// The digest of a set of rows (or documents): how many, and the XOR of their row hashes
/// (``RowHash``). Two sets of distinct rows with equal digests are equal but with probability
/// 2⁻⁶⁴; a row missing, extra or different on one side changes the count or the XOR.
///
/// PostgreSQL computes it as `count(*)` and `coalesce(bit_xor(h), 0)` over a key range; XOR needs no
/// wide arithmetic and digests of disjoint sets combine by XOR-ing them. Keys are unique on both
/// sides, so no two rows of one side share a hash and cancel.
struct RangeDigest: Sendable, Equatable {
    var count = 0
    var xor: UInt64 = 0

    mutating func add(_ hash: UInt64) {
        count += 1
        xor ^= hash
    }
}
