/// The merges of a BPE model: `(left id, right id) → (rank, merged id)`, in an open-addressing
/// hash table keyed by the packed pair, so that the merge loop looks pairs up without hashing
/// strings or allocating. Key and value share one 16-byte slot: a lookup touches one cache line.
struct TokenPairTable: Sendable {
    /// A merge: lower ranks merge first.
    struct Merge: Sendable, Equatable {
        var rank: UInt32
        var merged: Int32
    }

    private struct Slot: Sendable {
        var key: UInt64
        var merge: Merge
    }

    private var slots: [Slot]
    private let shift: UInt64
    private let mask: Int
    /// Number of pairs stored.
    private(set) var count = 0

    private static let empty = UInt64.max

    /// An empty table sized for `capacity` pairs (at most half full).
    init(capacity: Int) {
        var bits: UInt64 = 4
        while (1 << bits) < capacity * 2 { bits += 1 }
        slots = [Slot](repeating: Slot(key: Self.empty, merge: Merge(rank: 0, merged: 0)), count: 1 << bits)
        shift = 64 - bits
        mask = (1 << bits) - 1
    }

    private static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// Fibonacci hashing: the top bits of the product mix every bit of the pair.
    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> shift)
    }

    /// Stores the merge of `left` and `right`; a pair stored before is replaced (as the reference
    /// tokenizer does, the later line of `merges` wins).
    mutating func insert(_ left: Int32, _ right: Int32, _ merge: Merge) {
        let key = Self.key(left, right)
        var index = slot(key)
        while slots[index].key != Self.empty && slots[index].key != key { index = (index + 1) & mask }
        if slots[index].key == Self.empty { count += 1 }
        slots[index] = Slot(key: key, merge: merge)
    }

    /// The merge of `left` followed by `right`, or `nil` when they do not merge.
    func merge(_ left: Int32, _ right: Int32) -> Merge? {
        let key = Self.key(left, right)
        var index = slot(key)
        return slots.withUnsafeBufferPointer { slots -> Merge? in
            while true {
                let stored = slots[index].key
                if stored == key { return slots[index].merge }
                if stored == Self.empty { return nil }
                index = (index + 1) & mask
            }
        }
    }
}
