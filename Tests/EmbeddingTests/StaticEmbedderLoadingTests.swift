import Foundation
import Testing

@testable import Embedding

/// Loading a static model from files the tests write: every malformed, truncated or mismatched
/// file is a configuration error with the fix, never a crash.
struct StaticEmbedderLoadingTests {
    /// A tokenizer of four tokens and a 4 × 3 matrix whose rows are easy to average by hand.
    static let tokenizerJSON = """
        {"normalizer": {"type": "Lowercase"}, "pre_tokenizer": {"type": "WhitespaceSplit"},
         "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "ab": 3}, "merges": ["a b"]}}
        """
    static let rows: [[Float]] = [[1, 0, 0], [0, 1, 0], [0, 0, 2], [3, 4, 0]]

    /// A safetensors file holding `rows` as `dtype` (F32 or F16), with `extraTensor` to test selection.
    static func safetensors(_ rows: [[Float]], dtype: String = "F32", name: String = "embedding.weight", extraTensor: Bool = false) -> [UInt8] {
        var data: [UInt8] = []
        for value in rows.flatMap({ $0 }) {
            if dtype == "F16" {
                let bits = Float16Bits.encode(value)
                data += [UInt8(bits & 0xFF), UInt8(bits >> 8)]
            } else {
                let bits = value.bitPattern
                data += (0..<4).map { UInt8((bits >> (8 * $0)) & 0xFF) }
            }
        }
        var header = #"{"__metadata__": {"format": "pt"}, "\#(name)": {"dtype": "\#(dtype)", "shape": [\#(rows.count), \#(rows[0].count)], "data_offsets": [0, \#(data.count)]}"#
        if extraTensor {
            header += #", "other": {"dtype": "F32", "shape": [1, 1], "data_offsets": [\#(data.count), \#(data.count + 4)]}"#
            data += [0, 0, 0, 0]
        }
        header += "}"
        let headerBytes = Array(header.utf8)
        let length = UInt64(headerBytes.count)
        return (0..<8).map { UInt8((length >> (8 * $0)) & 0xFF) } + headerBytes + data
    }

    /// Writes the files into a fresh directory and returns a configuration pointing at them.
    static func files(weights: [UInt8]?, tokenizer: String? = tokenizerJSON, tensor: String? = nil) throws -> StaticEmbedder.Configuration {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tidemark-static-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = StaticEmbedder.Configuration()
        configuration.weights = directory.appendingPathComponent("tiny_model.safetensors").path
        configuration.tokenizer = directory.appendingPathComponent("tokenizer.json").path
        configuration.tensor = tensor
        if let weights { try Data(weights).write(to: URL(fileURLWithPath: configuration.weights)) }
        if let tokenizer { try Data(tokenizer.utf8).write(to: URL(fileURLWithPath: configuration.tokenizer)) }
        return configuration
    }

    static func expectConfigurationError(_ configuration: StaticEmbedder.Configuration, containing text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        do {
            _ = try StaticEmbedder(configuration: configuration, logger: .init(label: "test"))
            Issue.record("expected an error containing '\(text)'", sourceLocation: sourceLocation)
        } catch {
            #expect(error.code == .configuration, sourceLocation: sourceLocation)
            #expect(error.message.contains(text), "\(error.message)", sourceLocation: sourceLocation)
        }
    }

    @Test(arguments: ["F32", "F16"])
    func averagesTokenRowsAndNormalizes(dtype: String) async throws {
        let embedder = try StaticEmbedder(configuration: Self.files(weights: Self.safetensors(Self.rows, dtype: dtype)), logger: .init(label: "test"))
        #expect(embedder.dimensions == 3)
        #expect(embedder.model.hasPrefix("static:tiny_model@"))
        // "AB c" → lowercase, words "ab" and "c" → ids 3 and 2 → mean (1.5, 2, 1) → normalised.
        #expect(embedder.tokenizer.encode("AB c") == [3, 2])
        #expect(embedder.tokenCount("AB c") == 2)
        let vector = try await embedder.embed(["AB c"])[0]
        let length = (1.5 * 1.5 + 2 * 2 + 1 * 1 as Float).squareRoot()
        for (actual, expected) in zip(vector, [1.5 / length, 2 / length, 1 / length]) {
            #expect(abs(actual - expected) < 1e-6)
        }
        #expect(try await embedder.embed([""])[0] == [0, 0, 0])
        #expect(try await embedder.embed([]) == [])
    }

    @Test func theModelIdChangesWithTheFiles() throws {
        let first = try StaticEmbedder(configuration: Self.files(weights: Self.safetensors(Self.rows)), logger: .init(label: "test"))
        let same = try StaticEmbedder(configuration: Self.files(weights: Self.safetensors(Self.rows)), logger: .init(label: "test"))
        var changed = Self.rows
        changed[1][1] = 0.5
        let other = try StaticEmbedder(configuration: Self.files(weights: Self.safetensors(changed)), logger: .init(label: "test"))
        let otherTokenizer = try StaticEmbedder(
            configuration: Self.files(weights: Self.safetensors(Self.rows), tokenizer: Self.tokenizerJSON.replacingOccurrences(of: "Lowercase", with: "NFC")),
            logger: .init(label: "test"))
        #expect(first.model == same.model)
        #expect(first.model != other.model)
        #expect(first.model != otherTokenizer.model)
    }

    @Test func missingFilesSayHowToFetchTheModel() throws {
        Self.expectConfigurationError(try Self.files(weights: nil), containing: "does not exist; run Scripts/fetch-model.sh")
        Self.expectConfigurationError(try Self.files(weights: Self.safetensors(Self.rows), tokenizer: nil), containing: "run Scripts/fetch-model.sh")
    }

    @Test func truncatedWeightsAreRefused() throws {
        let file = Self.safetensors(Self.rows)
        for length in [0, 5, 8, 20, file.count - 1] {
            Self.expectConfigurationError(try Self.files(weights: Array(file.prefix(length))), containing: "embedder.weights")
        }
        Self.expectConfigurationError(try Self.files(weights: Array(file.prefix(file.count - 1))), containing: "outside the file")
        Self.expectConfigurationError(try Self.files(weights: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 1, 2]), containing: "header length")
    }

    @Test func malformedHeadersAreRefused() throws {
        func file(_ header: String, data: [UInt8] = []) -> [UInt8] {
            let bytes = Array(header.utf8)
            return (0..<8).map { UInt8((UInt64(bytes.count) >> (8 * $0)) & 0xFF) } + bytes + data
        }
        Self.expectConfigurationError(try Self.files(weights: file("not json")), containing: "not valid JSON")
        Self.expectConfigurationError(try Self.files(weights: file("[]")), containing: "not a JSON object")
        Self.expectConfigurationError(try Self.files(weights: file(#"{"w": {"dtype": "F32"}}"#)), containing: "needs dtype, shape and data_offsets")
        Self.expectConfigurationError(try Self.files(weights: file(#"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, data: Array(repeating: 0, count: 16))), containing: "no 2-D tensor")
        Self.expectConfigurationError(
            try Self.files(weights: file(#"{"w": {"dtype": "I64", "shape": [4, 3], "data_offsets": [0, 96]}}"#, data: Array(repeating: 0, count: 96))), containing: "holds I64")
        Self.expectConfigurationError(
            try Self.files(weights: file(#"{"w": {"dtype": "F32", "shape": [4, 3], "data_offsets": [0, 40]}}"#, data: Array(repeating: 0, count: 48))), containing: "do not fit")
        // NaN in the weights: damaged.
        Self.expectConfigurationError(try Self.files(weights: Self.safetensors([[.nan, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]])), containing: "not finite")
    }

    @Test func tensorSelection() throws {
        let file = Self.safetensors(Self.rows, extraTensor: true)
        Self.expectConfigurationError(try Self.files(weights: file), containing: "several 2-D tensors")
        Self.expectConfigurationError(try Self.files(weights: file, tensor: "missing"), containing: "there is no tensor 'missing'")
        let embedder = try StaticEmbedder(configuration: Self.files(weights: file, tensor: "embedding.weight"), logger: .init(label: "test"))
        #expect(embedder.dimensions == 3)
    }

    @Test func tokenizerAndMatrixMustBelongTogether() throws {
        Self.expectConfigurationError(try Self.files(weights: Self.safetensors(Array(Self.rows.prefix(3)))), containing: "belong to different models")
        Self.expectConfigurationError(try Self.files(weights: Self.safetensors(Self.rows), tokenizer: "{\"model\": 1}"), containing: "embedder.tokenizer")
        Self.expectConfigurationError(
            try Self.files(weights: Self.safetensors(Self.rows), tokenizer: Self.tokenizerJSON.replacingOccurrences(of: "WhitespaceSplit", with: "ByteLevel")),
            containing: "the pre-tokenizer type 'ByteLevel' is not supported")
    }

    @Test func halfPrecisionConversion() {
        #expect(EmbeddingMatrix.float(half: 0x0000) == 0)
        #expect(EmbeddingMatrix.float(half: 0x8000).sign == .minus)
        #expect(EmbeddingMatrix.float(half: 0x3C00) == 1)
        #expect(EmbeddingMatrix.float(half: 0xC000) == -2)
        #expect(EmbeddingMatrix.float(half: 0x7BFF) == 65504)
        #expect(EmbeddingMatrix.float(half: 0x0001) == Float(5.960464477539063e-8))
        #expect(EmbeddingMatrix.float(half: 0x03FF) == Float(6.097555160522461e-5))
        #expect(EmbeddingMatrix.float(half: 0x7C00) == .infinity)
        #expect(EmbeddingMatrix.float(half: 0x7E00).isNaN)
        for bits in stride(from: UInt16(0), to: 0x7C00, by: 97) {
            #expect(Float16Bits.encode(EmbeddingMatrix.float(half: bits)) == bits)
        }
    }
}

/// Half-precision encoding for writing test files (round to nearest; normal range and zero).
enum Float16Bits {
    static func encode(_ value: Float) -> UInt16 {
        if value == 0 { return value.sign == .minus ? 0x8000 : 0 }
        if value.isNaN { return 0x7E00 }
        let sign: UInt16 = value.sign == .minus ? 0x8000 : 0
        let magnitude = abs(value)
        if magnitude < 6.103515625e-5 {
            // Subnormal: units of 2^-24.
            return sign | UInt16((magnitude / 5.960464477539063e-8).rounded())
        }
        let exponent = Int(magnitude.exponent)
        let mantissa = UInt16(((magnitude / Float(sign: .plus, exponent: exponent, significand: 1)) - 1) * 1024)
        return sign | UInt16(exponent + 15) << 10 | mantissa
    }
}
