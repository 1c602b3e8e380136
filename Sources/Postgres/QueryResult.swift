/// The rows of one statement, in PostgreSQL's text format.
///
/// Values are `nil` for SQL `NULL`. Results are read whole; for large reads use
/// ``PostgresConnection/startCopyOut(_:)`` which streams.
public struct QueryResult: Sendable {
    /// One output column: its name and the OID of its type.
    public struct Column: Sendable, Hashable {
        public var name: String
        public var typeOID: UInt32
    }

    public var columns: [Column]
    public var rows: [[String?]]
    /// Rows inserted, updated or deleted, as reported by the command tag (0 when not applicable).
    public var affectedRows: Int
    /// The command tag, e.g. `INSERT 0 1`.
    public var commandTag: String

    public init(columns: [Column] = [], rows: [[String?]] = [], affectedRows: Int = 0, commandTag: String = "") {
        self.columns = columns
        self.rows = rows
        self.affectedRows = affectedRows
        self.commandTag = commandTag
    }

    /// Index of the column named `name`, if present.
    public func columnIndex(_ name: String) -> Int? {
        columns.firstIndex { $0.name == name }
    }

    /// The value of column `name` in row `row` (`nil` for NULL or an unknown column).
    public func value(_ row: Int, _ name: String) -> String? {
        guard row < rows.count, let column = columnIndex(name) else { return nil }
        return rows[row][column]
    }
}
