import Foundation
import Logging
import Postgres
import Synchronization
import Testing

@testable import Sync

/// Keeps every log line, to check what the agent would have written.
final class LogCapture: Sendable {
    let storage = Mutex<[String]>([])
    var lines: [String] { storage.withLock { $0 } }
    var logger: Logger { Logger(label: "tidemark.secrets") { _ in Forwarder(capture: self) } }

    struct Forwarder: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            capture.storage.withLock { $0.append("\(event.level) \(event.message) \(all) \(event.error.map { "\($0)" } ?? "")") }
        }
    }
}

@Suite struct SecretTests {
    /// Source URLs of an unreachable server, each holding the secret `Sup3r…Secret` in another form.
    static let forms: [String] = [
        "postgres://app:Sup3rSecret@127.0.0.1:1/none",
        "postgres://app:Sup3r%40Secret%2Fx@127.0.0.1:1/none",
        "postgres://app:Sup3r@Secret@127.0.0.1:1/none",
        "postgres://app:Sup3r/Secret@127.0.0.1:1/none",
        "postgres://app@127.0.0.1:1/none?password=Sup3rSecret",
        "postgres://app@127.0.0.1:1/none?sslmode=disable&sslpassword=Sup3rSecret",
        "postgres://app@127.0.0.1:1/none?PassWord=Sup3rSecret",
        "postgres://app@127.0.0.1:1/none?api_token=Sup3rSecret",
        "host=127.0.0.1 port=1 user=app password = Sup3rSecret",
        "host=127.0.0.1 port=1 user=app password = 'Sup3r Secret'",
        "host=127.0.0.1 port=1 user=app sslpassword=Sup3rSecret",
    ]

    @Test(arguments: forms)
    func anUnreachableSourceNeverShowsTheSecret(url: String) async throws {
        let capture = LogCapture()
        var configuration = AgentConfiguration(source: .init(url: url), entities: [
            .init(name: "item", table: .init(schema: "public", name: "items"), content: "{{title}}"),
        ])
        configuration.index = .sqlite(path: NSTemporaryDirectory() + "tidemark-secret-\(UUID().uuidString).db")
        var thrown: (any Error)?
        do {
            try await Agent(configuration: configuration, logger: capture.logger).run()
        } catch {
            thrown = error
        }
        let error = try #require(thrown, "the agent cannot start without its source")
        let texts = ["\(error)", (error as? PostgresError)?.message ?? "", configuration.source.redactedURL] + capture.lines
        #expect(texts[0].contains("cannot connect") || texts[0].contains("invalid"), "a useful message: \(texts[0])")
        for text in texts {
            for fragment in ["Sup3r", "Secret"] {
                #expect(!text.contains(fragment), "\(fragment) is visible in: \(text)")
            }
        }
    }
}
