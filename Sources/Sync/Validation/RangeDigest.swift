import Indexing

/// The digest of a set of rows (or documents): how many, and the wrapping (mod 2⁶⁴) sum of their row
/// hashes (``RowHash``). Two sets of distinct rows with equal digests are equal but with probability
/// about 2⁻⁶⁴; a row missing, extra or different on one side changes the count or the sum.
///
/// PostgreSQL computes it as `count(*)` and the sums of the hashes' two halves (`h >> 32` and
/// `h & 4294967295`, so that no sum overflows), the index store the same way inside SQLite or
/// PostgreSQL (``IndexStore/checkedDigests(entity:render:ranges:)``); a sum, unlike XOR, is an
/// aggregate SQLite has. Digests of disjoint sets combine by adding them.
struct RangeDigest: Sendable, Equatable {
    var count = 0
    var sum: UInt64 = 0

    mutating func add(_ hash: UInt64) {
        count += 1
        sum &+= hash
    }

    /// The digest from the two sums of halves (see ``CheckedDigest/sum(high:low:)``).
    init(count: Int = 0, high: Int64, low: Int64) {
        self.count = count
        sum = CheckedDigest.sum(high: high, low: low)
    }

    init(count: Int = 0, sum: UInt64 = 0) {
        self.count = count
        self.sum = sum
    }
}
