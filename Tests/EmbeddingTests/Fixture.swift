import Foundation
import Testing

@testable import Embedding

/// Test data: the committed fixtures and the (downloaded, not committed) default model.
enum Fixture {
    /// The directory of the committed fixtures (a test resource).
    static var directory: URL {
        get throws {
            try #require(Bundle.module.url(forResource: "Fixtures", withExtension: nil), "the Fixtures resource is missing from the test bundle")
        }
    }

    static func data(_ name: String) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent(name))
    }

    /// The package's root directory.
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Where the default model is looked for: `TIDEMARK_MODEL_DIR`, else `models/wordllama`.
    static let modelDirectory: String = {
        if let directory = ProcessInfo.processInfo.environment["TIDEMARK_MODEL_DIR"], !directory.isEmpty { return directory }
        return packageRoot.appendingPathComponent("models/wordllama").path
    }()

    /// The configuration of the default model in ``modelDirectory``.
    static var modelConfiguration: StaticEmbedder.Configuration {
        var configuration = StaticEmbedder.Configuration()
        configuration.weights = modelDirectory + "/l2_supercat_256.safetensors"
        configuration.tokenizer = modelDirectory + "/l2_supercat_tokenizer_config.json"
        return configuration
    }

    /// Whether the default model's files are there.
    static let modelPresent: Bool = {
        FileManager.default.fileExists(atPath: modelConfiguration.weights) && FileManager.default.fileExists(atPath: modelConfiguration.tokenizer)
    }()

    /// CI sets `TIDEMARK_REQUIRE_MODEL=1`: then a missing model fails the tests instead of skipping them.
    static let modelRequired = ProcessInfo.processInfo.environment["TIDEMARK_REQUIRE_MODEL"] == "1"

    /// Run model tests when the model is there, or when it must be (they then fail).
    static let runModelTests = modelPresent || modelRequired

    static let skipMessage: Comment =
        "the default model is not in models/wordllama (or TIDEMARK_MODEL_DIR): run Scripts/fetch-model.sh; set TIDEMARK_REQUIRE_MODEL=1 to fail instead of skipping"

    /// The default model, loaded once for all tests.
    static let embedder: Result<StaticEmbedder, EmbeddingError> = Result { () throws(EmbeddingError) in
        try StaticEmbedder(configuration: modelConfiguration, logger: .init(label: "test"))
    }

    /// The default model, or a recorded failure naming the fix.
    static func loadedEmbedder(sourceLocation: SourceLocation = #_sourceLocation) throws -> StaticEmbedder {
        guard modelPresent else {
            Issue.record("TIDEMARK_REQUIRE_MODEL=1 but the model is missing in \(modelDirectory): run Scripts/fetch-model.sh", sourceLocation: sourceLocation)
            throw EmbeddingError(.configuration, "model missing")
        }
        return try embedder.get()
    }
}
