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
    /// SQL types of the key columns (`format_type`), for typed key comparisons in chunked reads.
    public let keyTypes: [String]

    /// Columns the documents read: template and metadata columns, without duplicates.
    public let sourceColumns: [String]
    /// Columns read from the table for a document: key columns first, then the source columns.
    public let selectColumns: [String]
    /// How validation orders this entity's keys.
    public let keyOrder: KeyOrder
    /// Identifies how documents are rendered from source values: the template, the metadata
    /// columns and the boolean columns. Documents rendered under another fingerprint must be
    /// rendered again to be compared (see ``DocumentCheck``).
    public let renderFingerprint: Int64

    public init(
        name: String, table: TableName, keyColumns: [String], template: ContentTemplate, metadataColumns: [String],
        booleanColumns: Set<String> = [], keyTypes: [String] = []
    ) {
        self.keyTypes = keyTypes
        self.name = name
        self.table = table
        self.keyColumns = keyColumns
        self.template = template
        self.metadataColumns = metadataColumns
        self.booleanColumns = booleanColumns
        var seen = Set<String>()
        let source = (template.columns + metadataColumns).filter { seen.insert($0).inserted }
        sourceColumns = source
        seen = []
        selectColumns = (keyColumns + source).filter { seen.insert($0).inserted }
        keyOrder = KeyOrder(keyTypes: keyTypes, keyCount: keyColumns.count)
        // The key (columns and types) is part of it: documents written under another key have ids
        // and order keys of that key.
        let booleans = booleanColumns.intersection(source).sorted()
        renderFingerprint = RowHash.signed(
            RowHash.of(
                ["tidemark.render.2", template.source, "metadata"] + metadataColumns + ["booleans"] + booleans + ["key"] + keyColumns
                    + ["types"] + keyTypes))
    }

    /// Renders a document from the row's values (text forms by column name).
    ///
    /// - Throws: ``IndexingError`` `render` when a column the template or metadata needs is missing
    ///   from `values` (for example an unchanged TOAST value whose previous value is unknown).
    public func document(id: String, values: [String: String?], lsn: LSN, partition: String? = nil) throws(IndexingError) -> Document {
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
        var document = Document(
            entity: name, id: id, content: content, contentHash: Self.hash(content), metadata: metadata,
            sourceValues: source, lsn: lsn, partition: partition)
        document.check = check(values, source: source)
        return document
    }

    /// Longest order key a document keeps a check with; longer keys (kilobytes of text) would not
    /// fit a B-tree entry of the stores' check index, and their documents are compared in full.
    public static let longestCheckedKey = 1_024

    /// The document's ``DocumentCheck``: `nil` when a key value is missing or NULL (no row has such
    /// a key), or the encoded key is longer than ``longestCheckedKey``.
    private func check(_ values: [String: String?], source: [String: String?]) -> DocumentCheck? {
        var keyTexts: [String] = []
        keyTexts.reserveCapacity(keyColumns.count)
        for column in keyColumns {
            guard let value = values[column], let value else { return nil }
            keyTexts.append(value)
        }
        var hash = RowHash()
        for text in keyTexts { hash.add(text) }
        for column in sourceColumns { hash.add(source[column] ?? nil) }
        let orderKey = keyOrder.encoded(keyTexts)
        guard orderKey.count <= Self.longestCheckedKey else { return nil }
        return DocumentCheck(rowHash: RowHash.signed(hash.value), orderKey: orderKey, render: renderFingerprint)
    }

    /// Hex SHA-256 of the content.
    public static func hash(_ content: String) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex = [UInt8]()
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: Data(content.utf8)) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: hex, as: UTF8.self)
    }
}
