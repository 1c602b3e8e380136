import Capture
import Indexing
import Logging
import Postgres

/// Reprocesses dead letters: reads each row again from the source and feeds it through the pipeline;
/// rows that no longer exist are removed from the index and the list.
public struct DeadLetterRetry: Sendable {
    public struct Outcome: Sendable, Equatable {
        public var indexed = 0
        public var removed = 0
        public var stillFailing = 0
    }

    let entities: [EntityMapping]
    let store: any IndexStore
    let embedder: any Embedder
    let rowSource: RowSource
    let logger: Logger

    public init(entities: [EntityMapping], store: any IndexStore, embedder: any Embedder, rowSource: RowSource, logger: Logger) {
        self.entities = entities
        self.store = store
        self.embedder = embedder
        self.rowSource = rowSource
        self.logger = logger
    }

    public func retry(_ letters: [DeadLetter]) async throws -> Outcome {
        let pipeline = Pipeline(configuration: .init(), entities: entities, embedder: embedder, store: store, rowSource: rowSource, logger: logger)
        let removed = try await pipeline.run { try await feed(letters, to: pipeline) }
        var outcome = Outcome()
        outcome.removed = removed
        let remaining = Set(try await store.deadLetters(entity: nil).map { "\($0.entity)/\($0.id)" })
        outcome.stillFailing = letters.filter { remaining.contains("\($0.entity)/\($0.id)") }.count
        outcome.indexed = letters.count - outcome.stillFailing - outcome.removed
        return outcome
    }

    /// Reads the rows again and feeds them; returns how many are gone from the source.
    private func feed(_ letters: [DeadLetter], to pipeline: Pipeline) async throws -> Int {
        var removed = 0
        for (name, group) in Dictionary(grouping: letters, by: \.entity) {
            guard let entity = entities.first(where: { $0.name == name }) else { continue }
            let ids = group.map(\.id)
            let rows = try await rowSource.fetch(entity, ids: ids)
            let columns = entity.selectColumns
            let schema = RelationSchema(
                id: 0, table: entity.table,
                columns: columns.map { .init(name: $0, typeOID: 0, isReplicaIdentity: entity.keyColumns.contains($0)) },
                replicaIdentity: "d", keyIndexes: entity.keyColumns.compactMap { columns.firstIndex(of: $0) })
            var changes: [RowChange] = []
            for letter in group {
                if let row = rows[letter.id] {
                    let values = columns.map { column in (row[column] ?? nil).map(ColumnValue.text) ?? .null }
                    changes.append(RowChange(
                        operation: .insert, schema: schema, key: schema.keyIndexes.map { values[$0] }, newValues: values,
                        oldKey: nil, oldValues: nil, xid: 0, commitLSN: letter.lsn, commitTime: 0))
                } else {
                    let key = (DocumentID.parse(letter.id, keyCount: entity.keyColumns.count) ?? []).map { $0.map(ColumnValue.text) ?? .null }
                    changes.append(RowChange(
                        operation: .delete, schema: schema, key: key, newValues: nil, oldKey: key, oldValues: nil,
                        xid: 0, commitLSN: letter.lsn, commitTime: 0))
                    removed += 1
                }
            }
            try await pipeline.ingest(changes)
        }
        return removed
    }
}
