/// A model-free, deterministic embedder: signed feature hashing of words and character trigrams into
/// 384 dimensions, L2-normalised.
///
/// It is lexical, not semantic: texts that share words and word pieces land close together; synonyms
/// do not. It needs no download and no network, and embeds tens of thousands of short texts per
/// second on one core, so it never limits the pipeline. Use a real model (an OpenAI-compatible
/// provider) for semantic search.
public struct BuiltinEmbedder: Embedder {
    public let model = "tidemark-hash-384-v1"
    public let dimensions = 384
    public let maxBatchSize = 1024

    public init() {}

    public func embed(_ texts: [String]) async throws -> [[Float]] {
        texts.map(vector)
    }

    /// The vector of one text (synchronous; same result as ``embed(_:)``).
    public func vector(_ text: String) -> [Float] {
        var vector = [Float](repeating: 0, count: dimensions)
        var word: [UInt8] = []
        word.reserveCapacity(32)
        func addWord() {
            guard !word.isEmpty else { return }
            add(hash(word[...], seed: 0x5157), weight: 1.0, to: &vector)
            // Character trigrams of the word padded with boundary markers: catch inflections and typos.
            word.insert(0x23, at: 0)
            word.append(0x23)
            for start in 0...(word.count - 3) {
                add(hash(word[start..<start + 3], seed: 0x7269), weight: 0.35, to: &vector)
            }
            word.removeAll(keepingCapacity: true)
        }
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): word.append(byte + 32)
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"), 0x80...: word.append(byte)
            default: addWord()
            }
        }
        addWord()
        var norm: Float = 0
        for value in vector { norm += value * value }
        if norm > 0 {
            let scale = 1 / norm.squareRoot()
            for index in vector.indices { vector[index] *= scale }
        }
        return vector
    }

    private func add(_ hash: UInt64, weight: Float, to vector: inout [Float]) {
        let index = Int(hash % UInt64(dimensions))
        let sign: Float = (hash >> 63) == 0 ? 1 : -1
        vector[index] += sign * weight
    }

    /// FNV-1a, 64 bit, with a seed folded in.
    private func hash(_ bytes: ArraySlice<UInt8>, seed: UInt64) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ seed
        for byte in bytes {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        // Final avalanche so that the low bits (index) and the top bit (sign) are independent.
        hash ^= hash >> 33
        hash &*= 0xff51_afd7_ed55_8ccd
        hash ^= hash >> 33
        return hash
    }
}
