/// A byte-pair-encoding model (Hugging Face `tokenizers` type `BPE`): a word starts as one symbol
/// per Unicode scalar and adjacent symbols merge by rank until no listed pair remains.
///
/// Guarantees:
/// - The same ids as the reference implementation: the lowest-ranked pair merges first, and of
///   equally ranked pairs the leftmost; scalars missing from the vocabulary become their UTF-8
///   bytes' `<0xXX>` tokens (`byte_fallback`) or the unknown token (fused when `fuse_unk`).
/// - O(n log n) in the length of the word: candidate merges sit in a priority queue and symbols in a
///   linked list, so a 20 000-character text without pre-tokenization costs milliseconds.
/// - Works on UTF-8 bytes and ids; nothing is allocated per symbol.
struct BytePairModel: Sendable {
    let vocabulary: Vocabulary
    let merges: TokenPairTable
    /// Id of the unknown token, if the model has one.
    let unknownID: Int32?
    /// Whether consecutive unknown scalars become one unknown token.
    let fuseUnknown: Bool
    /// `byte → id` of the `<0xXX>` tokens (-1 where the vocabulary lacks one) when `byte_fallback`
    /// is on; a scalar falls back to bytes only when all of its bytes have tokens.
    let byteTokens: [Int32]?
    /// Prepended to every symbol but a word's first (`continuing_subword_prefix`).
    let continuingSubwordPrefix: [UInt8]
    /// Appended to a word's last symbol (`end_of_word_suffix`).
    let endOfWordSuffix: [UInt8]
    /// Whether a word found whole in the vocabulary skips merging (`ignore_merges`).
    let ignoreMerges: Bool

    /// Appends the ids of `word` to `ids`.
    func tokenize(_ word: UnsafeBufferPointer<UInt8>, into ids: inout [Int32]) {
        guard !word.isEmpty else { return }
        if ignoreMerges, continuingSubwordPrefix.isEmpty, endOfWordSuffix.isEmpty, let id = vocabulary.id(word) {
            ids.append(id)
            return
        }
        var symbols: [Int32] = []
        symbols.reserveCapacity(word.count)
        appendInitialSymbols(word, to: &symbols)
        guard symbols.count > 1 else {
            ids.append(contentsOf: symbols)
            return
        }
        merge(&symbols)
        ids.append(contentsOf: symbols)
    }

    /// One symbol per scalar (or per byte, or one fused unknown), in order.
    private func appendInitialSymbols(_ word: UnsafeBufferPointer<UInt8>, to symbols: inout [Int32]) {
        let plain = continuingSubwordPrefix.isEmpty && endOfWordSuffix.isEmpty
        var pendingUnknown = false
        var index = 0
        var key: [UInt8] = []
        while index < word.count {
            let length = min(UTF8Scalar.length(lead: word[index]), word.count - index)
            let scalar = UnsafeBufferPointer(rebasing: word[index..<index + length])
            let isFirst = index == 0
            let isLast = index + length == word.count
            index += length
            var id: Int32?
            if plain {
                id = vocabulary.id(scalar)
            } else {
                key.removeAll(keepingCapacity: true)
                if !isFirst { key.append(contentsOf: continuingSubwordPrefix) }
                key.append(contentsOf: scalar)
                if isLast { key.append(contentsOf: endOfWordSuffix) }
                id = key.withUnsafeBufferPointer { vocabulary.id($0) }
            }
            if let id {
                if pendingUnknown, let unknownID { symbols.append(unknownID) }
                pendingUnknown = false
                symbols.append(id)
                continue
            }
            if let byteTokens {
                // As in the reference, a pending unknown is not flushed before byte tokens.
                let fellBack = plain
                    ? Self.appendBytes(scalar, byteTokens, to: &symbols)
                    : key.withUnsafeBufferPointer { Self.appendBytes($0, byteTokens, to: &symbols) }
                if fellBack { continue }
            }
            guard let unknownID else { continue }  // no unknown token: the reference drops the scalar
            if pendingUnknown && !fuseUnknown { symbols.append(unknownID) }
            pendingUnknown = true
        }
        if pendingUnknown, let unknownID { symbols.append(unknownID) }
    }

    /// Appends the byte tokens of `bytes` when every byte has one; returns whether it did.
    private static func appendBytes(_ bytes: UnsafeBufferPointer<UInt8>, _ byteTokens: [Int32], to symbols: inout [Int32]) -> Bool {
        for byte in bytes where byteTokens[Int(byte)] < 0 { return false }
        for byte in bytes { symbols.append(byteTokens[Int(byte)]) }
        return true
    }

    /// Merges `symbols` in place until no adjacent pair has a merge.
    private func merge(_ symbols: inout [Int32]) {
        let count = symbols.count
        // Linked list of symbols: next/previous index, -1 at the ends; a merged-away symbol is dead.
        let links = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * count)
        defer { links.deallocate() }
        let next = links
        let previous = links + count
        for index in 0..<count {
            next[index] = index + 1 < count ? Int32(index + 1) : -1
            previous[index] = Int32(index - 1)
        }
        let alive = UnsafeMutablePointer<Bool>.allocate(capacity: count)
        defer { alive.deallocate() }
        alive.initialize(repeating: true, count: count)
        // n − 1 initial pairs, then at most two new pairs per merge, and at most n − 1 merges.
        var queue = MergeQueue(capacity: 3 * count)
        symbols.withUnsafeMutableBufferPointer { symbols in
            for position in 0..<(count - 1) {
                let left = symbols[position]
                let right = symbols[position + 1]
                if let merge = merges.merge(left, right) {
                    queue.append(.init(order: Self.order(merge.rank, position), left: left, right: right, merged: merge.merged))
                }
            }
            queue.heapify()
            while let top = queue.pop() {
                let position = top.position
                guard alive[position] else { continue }
                let right = Int(next[position])
                guard right >= 0 else { continue }
                // An entry is stale when either symbol has merged since it was queued. As in the
                // reference, it still applies when the pair now there merges into the same token.
                if symbols[position] != top.left || symbols[right] != top.right {
                    guard let current = merges.merge(symbols[position], symbols[right]), current.merged == top.merged else { continue }
                }
                symbols[position] = top.merged
                alive[right] = false
                let afterRight = Int(next[right])
                next[position] = Int32(afterRight)
                if afterRight >= 0 { previous[afterRight] = Int32(position) }
                let before = Int(previous[position])
                if before >= 0, let merge = merges.merge(symbols[before], top.merged) {
                    queue.push(.init(order: Self.order(merge.rank, before), left: symbols[before], right: top.merged, merged: merge.merged))
                }
                if afterRight >= 0, let merge = merges.merge(top.merged, symbols[afterRight]) {
                    queue.push(.init(order: Self.order(merge.rank, position), left: top.merged, right: symbols[afterRight], merged: merge.merged))
                }
            }
        }
        var kept = 0
        for index in 0..<count where alive[index] {
            symbols[kept] = symbols[index]
            kept += 1
        }
        symbols.removeLast(count - kept)
    }

    private static func order(_ rank: UInt32, _ position: Int) -> UInt64 {
        UInt64(rank) << 32 | UInt64(UInt32(truncatingIfNeeded: position))
    }
}
