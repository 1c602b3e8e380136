import Foundation

/// The body of a successful `POST /embeddings` answer, as OpenAI-compatible providers send it:
/// `{"data": [{"index": 0, "embedding": [0.1, …]}, …], "usage": {"total_tokens": 12}}`.
///
/// An `embedding` given as a base64 string (little-endian float32, what `encoding_format: base64`
/// returns) is accepted too, for providers that ignore the requested format. A missing `index`
/// means the item's position.
struct EmbeddingsResponse: Decodable, Sendable {
    struct Item: Decodable, Sendable {
        var index: Int?
        var embedding: [Float]

        private enum CodingKeys: String, CodingKey { case index, embedding }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            index = try container.decodeIfPresent(Int.self, forKey: .index)
            if let text = try? container.decode(String.self, forKey: .embedding) {
                guard let data = Data(base64Encoded: text), data.count % 4 == 0 else {
                    throw DecodingError.dataCorruptedError(forKey: .embedding, in: container, debugDescription: "embedding is a string but not base64 float32")
                }
                embedding = data.withUnsafeBytes { raw in
                    (0..<(data.count / 4)).map { Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 4, as: UInt32.self))) }
                }
            } else {
                embedding = try container.decode([Float].self, forKey: .embedding)
            }
        }
    }

    struct Usage: Decodable, Sendable {
        var totalTokens: Int?
        var promptTokens: Int?

        private enum CodingKeys: String, CodingKey {
            case totalTokens = "total_tokens"
            case promptTokens = "prompt_tokens"
        }
    }

    var data: [Item]
    var usage: Usage?

    /// The vectors in input order, checked: exactly `count` of them, indices `0..<count` each once,
    /// all of one length. Throws a message naming what is wrong.
    func vectors(count: Int) throws(EmbeddingError) -> [[Float]] {
        guard data.count == count else {
            throw EmbeddingError(.invalidResponse, "the provider answered \(data.count) vectors for \(count) inputs")
        }
        var ordered = [[Float]?](repeating: nil, count: count)
        for (position, item) in data.enumerated() {
            let index = item.index ?? position
            guard index >= 0, index < count else {
                throw EmbeddingError(.invalidResponse, "the provider answered a vector for index \(index) of a request of \(count) inputs")
            }
            guard ordered[index] == nil else {
                throw EmbeddingError(.invalidResponse, "the provider answered two vectors for index \(index)")
            }
            ordered[index] = item.embedding
        }
        let vectors = ordered.compactMap { $0 }
        guard vectors.count == count else {
            throw EmbeddingError(.invalidResponse, "the provider's answer lacks vectors for some of the \(count) inputs")
        }
        if let first = vectors.first {
            guard !first.isEmpty else { throw EmbeddingError(.invalidResponse, "the provider answered empty vectors") }
            if let other = vectors.first(where: { $0.count != first.count }) {
                throw EmbeddingError(.invalidResponse, "the provider answered vectors of \(first.count) and of \(other.count) dimensions in one answer")
            }
        }
        return vectors
    }
}
