import Capture
import Crypto
import Foundation
import Postgres

/// How one table becomes documents: a content template, metadata columns, and the key.
public struct EntityMapping: Sendable {
    /// The entity's name (configuration key), e.g. `product`.
    public let name: String
    public let table: TableName
    /// Key columns in key order (the primary key unless configured otherwise).
    public let keyColumns: [String]
    public let template: ContentTemplate
    public let metadataColumns: [String]
    /// Columns of type boolean (rendered as true/false in sections).
    public let booleanColumns: Set<String>

    /// Columns the documents read: template and metadata columns, without duplicates.
    public var sourceColumns: [String] {
        var seen = Set<String>()
        return (template.columns + metadataColumns).filter { seen.insert($0).inserted }
    }

    /// Columns read from the table for a document: key columns first, then the source columns.
    public var selectColumns: [String] {
        var seen = Set<String>()
        return (keyColumns + sourceColumns).filter { seen.insert($0).inserted }
    }

    public init(
        name: String, table: TableName, keyColumns: [String], template: ContentTemplate, metadataColumns: [String],
        booleanColumns: Set<String> = []
    ) {
        self.name = name
        self.table = table
        self.keyColumns = keyColumns
        self.template = template
        self.metadataColumns = metadataColumns
        self.booleanColumns = booleanColumns
    }

    /// Renders a document from the row's values (text forms by column name).
    ///
    /// - Throws: ``IndexingError`` `render` when a column the template or metadata needs is missing
    ///   from `values` (for example an unchanged TOAST value whose previous value is unknown).
    public func document(id: String, values: [String: String?], lsn: LSN) throws(IndexingError) -> Document {
        var source: [String: String?] = [:]
        for column in sourceColumns {
            guard let value = values[column] else {
                throw IndexingError(.render, "column \"\(column)\" of \(table) has no value for row \(id)")
            }
            source[column] = value
        }
        let content = template.render(source, booleans: booleanColumns)
        var metadata: [String: String?] = [:]
        for column in metadataColumns { metadata[column] = source[column] ?? nil }
        return Document(
            entity: name, id: id, content: content, contentHash: Self.hash(content), metadata: metadata,
            sourceValues: source, lsn: lsn)
    }

    /// Hex SHA-256 of the content.
    public static func hash(_ content: String) -> String {
        SHA256.hash(data: Data(content.utf8)).map { String(format: "%02x", $0) }.joined()
    }
}
