import Foundation
import Testing

@testable import Sync

/// Docs/configuration.md documents every key the loader knows, with its environment variable, and
/// nothing else: the reference cannot drift from `ConfigurationLoader.sections`.
@Suite struct ConfigurationReferenceTests {
    static let reference: String? = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return try? String(contentsOf: root.appendingPathComponent("Docs/configuration.md"), encoding: .utf8)
    }()

    /// Keys in the reference's tables: rows that start with `| \`section.key\``.
    static func documentedKeys(_ text: String) -> [String: String] {
        var keys: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 3, cells[0].hasPrefix("`"), cells[0].hasSuffix("`") else { continue }
            keys[String(cells[0].dropFirst().dropLast())] = line.description
        }
        return keys
    }

    @Test func everyKeyIsDocumentedWithItsVariable() throws {
        let text = try #require(Self.reference, "Docs/configuration.md is missing")
        let documented = Self.documentedKeys(text)
        var expected: [String] = []
        for (section, keys) in ConfigurationLoader.sections {
            for key in keys { expected.append("\(section).\(key)") }
        }
        for key in ConfigurationLoader.entityKeys { expected.append("entities.<name>.\(key)") }
        for key in expected.sorted() {
            let row = try #require(documented[key], "Docs/configuration.md does not document \(key)")
            let path = key.split(separator: ".").map { $0 == "<name>" ? "<NAME>" : String($0) }
            let variable = ConfigurationLoader.variableName(path)
            #expect(row.contains("`\(variable)`"), "\(key): the row must name \(variable)")
        }
        for key in documented.keys.sorted() where !expected.contains(key) {
            Issue.record("Docs/configuration.md documents \(key), which the loader does not know")
        }
    }
}
