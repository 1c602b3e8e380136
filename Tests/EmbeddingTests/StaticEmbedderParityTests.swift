import Foundation
import Testing

@testable import Embedding

/// The static embedder against the reference (wordllama over Hugging Face `tokenizers`), on the
/// texts of `Fixtures/static-golden.json` (written by `Scripts/make-static-golden.sh`).
@Suite(.enabled(if: Fixture.runModelTests, Fixture.skipMessage))
struct StaticEmbedderParityTests {
    struct Golden: Decodable {
        struct Entry: Decodable {
            var text: String
            var ids: [Int32]
            var vector: [Float]?
        }

        var texts: [Entry]
    }

    static func golden() throws -> Golden {
        try JSONDecoder().decode(Golden.self, from: Fixture.data("static-golden.json"))
    }

    @Test func tokenIdsMatchTheReferenceForEveryText() throws {
        let embedder = try Fixture.loadedEmbedder()
        let golden = try Self.golden()
        #expect(golden.texts.count > 300)
        var mismatches = 0
        for entry in golden.texts {
            let ids = embedder.tokenizer.encode(entry.text)
            if ids != entry.ids {
                mismatches += 1
                let firstDifference = zip(ids, entry.ids).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(ids.count, entry.ids.count)
                Issue.record("ids differ for \(entry.text.debugDescription.prefix(80)) at token \(firstDifference): got \(ids.count) ids \(Array(ids.dropFirst(firstDifference).prefix(6))), expected \(entry.ids.count) \(Array(entry.ids.dropFirst(firstDifference).prefix(6)))")
                if mismatches > 10 { break }
            }
            #expect(embedder.tokenCount(entry.text) == entry.ids.count)
        }
    }

    @Test func vectorsMatchTheReference() async throws {
        let embedder = try Fixture.loadedEmbedder()
        let golden = try Self.golden()
        let vectors = try await embedder.embed(golden.texts.map(\.text))
        var worst: Float = 1
        for (entry, vector) in zip(golden.texts, vectors) {
            #expect(vector.count == 256)
            guard let expected = entry.vector else {
                // The reference divides by zero for a text without tokens; the embedder returns zeros.
                #expect(entry.ids.isEmpty)
                #expect(vector.allSatisfy { $0 == 0 }, "a text without tokens embeds to the zero vector")
                continue
            }
            let cosine = zip(vector, expected).reduce(Float(0)) { $0 + $1.0 * $1.1 } / (VectorMath.norm(vector) * VectorMath.norm(expected))
            worst = min(worst, cosine)
            #expect(cosine >= 0.9999, "cosine \(cosine) for \(entry.text.debugDescription.prefix(80))")
            #expect(abs(VectorMath.norm(vector) - 1) < 1e-4)
        }
        #expect(worst >= 0.9999)
        print("static parity: \(golden.texts.count) texts, worst cosine \(worst)")
    }

    @Test func emptyAndWhitespaceTexts() throws {
        let embedder = try Fixture.loadedEmbedder()
        #expect(embedder.tokenizer.encode("").isEmpty)
        #expect(embedder.tokenCount("") == 0)
        #expect(embedder.vector("") == [Float](repeating: 0, count: 256))
        // No BOS: the first token is the text's own.
        #expect(embedder.tokenizer.encode("hello world") == [22172, 3186])
        #expect(embedder.tokenizer.encode("a<s>b") == [263, 1, 289])
    }

    @Test func semanticNeighboursAreCloserThanUnrelatedTexts() throws {
        let embedder = try Fixture.loadedEmbedder()
        let query = embedder.vector("something to keep my coffee hot on the go")
        let mug = embedder.vector("Insulated Stainless Steel Travel Mug")
        let hose = embedder.vector("Rugged Recycled Plastic Garden Hose")
        let dot = { (a: [Float], b: [Float]) in zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 } }
        #expect(dot(query, mug) > dot(query, hose))
    }

    @Test func modelNamesTheFileAndItsFingerprint() throws {
        let embedder = try Fixture.loadedEmbedder()
        #expect(embedder.model.hasPrefix("static:l2_supercat_256@"))
        #expect(embedder.model.count == "static:l2_supercat_256@".count + 8)
        #expect(embedder.dimensions == 256)
        #expect(embedder.matrix.rows == 32_000)
    }

    @Test func parallelEmbeddingEqualsOneByOne() async throws {
        let embedder = try Fixture.loadedEmbedder()
        let texts = (0..<300).map { "text number \($0) about \($0 % 7 == 0 ? "lanterns" : "kettles")" }
        let batch = try await embedder.embed(texts)
        #expect(batch == texts.map(embedder.vector))
        let before = embedder.statistics
        _ = try await embedder.embed(["one", "two"])
        let after = embedder.statistics
        #expect(after.requests == before.requests + 1)
        #expect(after.inputs == before.inputs + 2)
        #expect(after.tokens > before.tokens)
    }
}
