/// The merges of a BPE model: `(left id, right id) → (rank, merged id)`, in an open-addressing
/// hash table keyed by the packed pair, so that the merge loop looks pairs up without hashing
/// strings or allocating.
struct TokenPairTable: Sendable {
    /// A merge: lower ranks merge first.
    struct Merge: Sendable, Equatable {
        var rank: UInt32
        var merged: Int32
    }

    private var keys: [UInt64]
    private var values: [Merge]
    private var mask: Int
    /// Number of pairs stored.
    private(set) var count = 0

    private static let empty = UInt64.max

    /// An empty table sized for `capacity` pairs.
    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: size)
        values = [Merge](repeating: Merge(rank: 0, merged: 0), count: size)
        mask = size - 1
    }

    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    private static func slot(_ key: UInt64, _ mask: Int) -> Int {
        // A multiplicative mix (the top bits of the product are the best mixed).
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 32) & mask
    }

    /// Stores the merge of `left` and `right`; a pair stored before is replaced (as the reference
    /// tokenizer does, the later line of `merges` wins).
    mutating func insert(_ left: Int32, _ right: Int32, _ merge: Merge) {
        let key = Self.key(left, right)
        var slot = Self.slot(key, mask)
        while keys[slot] != Self.empty && keys[slot] != key { slot = (slot + 1) & mask }
        if keys[slot] == Self.empty { count += 1 }
        keys[slot] = key
        values[slot] = merge
    }

    /// The merge of `left` followed by `right`, or `nil` when they do not merge.
    func merge(_ left: Int32, _ right: Int32) -> Merge? {
        let key = Self.key(left, right)
        var slot = Self.slot(key, mask)
        while true {
            let stored = keys[slot]
            if stored == key { return values[slot] }
            if stored == Self.empty { return nil }
            slot = (slot + 1) & mask
        }
    }
}
