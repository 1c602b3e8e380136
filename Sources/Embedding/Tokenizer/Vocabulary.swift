/// The tokens of a tokenizer: each token's UTF-8 bytes and id, looked up by bytes without building
/// a `String`.
///
/// All token bytes live in one buffer; lookups hash a byte slice (FNV-1a) into an open-addressing
/// table of offsets, so a lookup costs one hash and usually one comparison, and nothing is allocated.
/// Single-byte tokens (ASCII) are answered from a 256-entry array.
struct Vocabulary: Sendable {
    /// Bytes of all tokens, back to back.
    private let storage: [UInt8]
    /// For each id: start of its bytes in `storage` and their count; `count == -1` for ids no
    /// token has (sparse vocabularies).
    private let starts: [Int32]
    private let counts: [Int32]
    /// Open addressing: `slot → id + 1`, 0 for an empty slot. Power-of-two size, at most half full.
    private let slots: [Int32]
    private let mask: Int
    /// `byte → id` of single-byte tokens, -1 where none.
    private let singleBytes: [Int32]

    /// Number of ids (one more than the largest id).
    var count: Int { starts.count }

    /// Builds the table from `token → id` pairs. Throws when two tokens share an id or an id is
    /// negative. A token listed twice keeps its first id (lookups are deterministic).
    init(_ tokens: [(token: String, id: Int)]) throws(EmbeddingError) {
        let largest = tokens.map(\.id).max() ?? -1
        guard largest < Int(Int32.max) else { throw EmbeddingError(.configuration, "token id \(largest) is too large") }
        var storage: [UInt8] = []
        storage.reserveCapacity(tokens.reduce(0) { $0 + $1.token.utf8.count })
        var starts = [Int32](repeating: 0, count: largest + 1)
        var counts = [Int32](repeating: -1, count: largest + 1)
        for (token, id) in tokens {
            guard id >= 0 else { throw EmbeddingError(.configuration, "token '\(token)' has the negative id \(id)") }
            guard counts[id] == -1 else { throw EmbeddingError(.configuration, "two tokens share the id \(id) (one is '\(token)')") }
            starts[id] = Int32(storage.count)
            storage.append(contentsOf: token.utf8)
            counts[id] = Int32(token.utf8.count)
        }
        var capacity = 16
        while capacity < tokens.count * 2 { capacity <<= 1 }
        let mask = capacity - 1
        var slots = [Int32](repeating: 0, count: capacity)
        var singleBytes = [Int32](repeating: -1, count: 256)
        storage.withUnsafeBufferPointer { all in
            for (_, id) in tokens {
                let bytes = UnsafeBufferPointer(rebasing: all[Int(starts[id])..<Int(starts[id]) + Int(counts[id])])
                var slot = Int(truncatingIfNeeded: Self.hash(bytes, seed: Self.seed)) & mask
                var duplicate = false
                while slots[slot] != 0 {
                    let other = Int(slots[slot]) - 1
                    if Self.equals(other, bytes, all, starts, counts) {
                        duplicate = true
                        break
                    }
                    slot = (slot + 1) & mask
                }
                guard !duplicate else { continue }
                slots[slot] = Int32(id + 1)
                if bytes.count == 1 { singleBytes[Int(bytes[0])] = Int32(id) }
            }
        }
        self.storage = storage
        self.starts = starts
        self.counts = counts
        self.slots = slots
        self.mask = mask
        self.singleBytes = singleBytes
    }

    /// The id of the token whose bytes are exactly `bytes`, or `nil`.
    func id(_ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        if bytes.count == 1 {
            let id = singleBytes[Int(bytes[0])]
            return id < 0 ? nil : id
        }
        return storage.withUnsafeBufferPointer { all -> Int32? in
            var slot = Int(truncatingIfNeeded: Self.hash(bytes, seed: Self.seed)) & mask
            while slots[slot] != 0 {
                let id = Int(slots[slot]) - 1
                if Self.equals(id, bytes, all, starts, counts) { return Int32(id) }
                slot = (slot + 1) & mask
            }
            return nil
        }
    }

    /// The id of the token `prefix + bytes` (for WordPiece's `##` continuation), or `nil`.
    func id(prefix: [UInt8], _ bytes: UnsafeBufferPointer<UInt8>) -> Int32? {
        if prefix.isEmpty { return id(bytes) }
        var joined = prefix
        joined.append(contentsOf: bytes)
        return joined.withUnsafeBufferPointer { id($0) }
    }

    /// The id of `token`, or `nil`.
    func id(_ token: String) -> Int32? {
        var token = token
        return token.withUTF8 { id($0) }
    }

    /// The text of the token with `id`, or `nil` when no token has it.
    func token(_ id: Int) -> String? {
        guard id >= 0, id < counts.count, counts[id] >= 0 else { return nil }
        let start = Int(starts[id])
        return String(decoding: storage[start..<start + Int(counts[id])], as: UTF8.self)
    }

    private static func equals(
        _ id: Int, _ bytes: UnsafeBufferPointer<UInt8>, _ all: UnsafeBufferPointer<UInt8>, _ starts: [Int32], _ counts: [Int32]
    ) -> Bool {
        guard Int(counts[id]) == bytes.count else { return false }
        let start = Int(starts[id])
        for offset in 0..<bytes.count where all[start + offset] != bytes[offset] { return false }
        return true
    }

    private static let seed: UInt64 = 0xcbf2_9ce4_8422_2325

    /// FNV-1a over the bytes, with a final mix so that the low bits (the slot) depend on every byte.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>, seed: UInt64) -> UInt64 {
        var hash = seed
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        hash ^= hash >> 29
        hash &*= 0xbf58_476d_1ce4_e5b9
        hash ^= hash >> 32
        return hash
    }
}
