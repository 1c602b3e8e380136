import Foundation

/// A family of operations of the differential test. `TIDEMARK_DIFF_OPS` (a comma list of raw values)
/// switches families on, so a developer can isolate a failure; all are on by default.
enum OperationFamily: String, CaseIterable, Comparable, Sendable {
    /// Single-row inserts.
    case insert
    /// Updates that change rendered content (for notes also title-only updates, whose TOASTed body
    /// then arrives as "unchanged TOAST").
    case update
    /// Updates of metadata columns only, or of a column no document reads (one or several rows).
    case metadata
    /// Updates of a key column: the document moves to a new id.
    case rekey
    /// Updates of the partition key: the row moves to another partition (and to a new id).
    case move
    /// Deletes of one or several rows.
    case delete
    /// Delete and insert again of the same key in one transaction.
    case reinsert
    /// TRUNCATE and reload of the same rows (sometimes minus a few) in one transaction.
    case truncate
    /// Work inside a savepoint rolled back with ROLLBACK TO (sometimes one released instead).
    case savepoint
    /// Whole transactions rolled back.
    case rollback
    /// Transactions of a few thousand rows, which the walsender streams before they commit.
    case stream
    /// Writes to a table no entity is configured for.
    case unconfigured
    /// SIGKILL of the agent (between statements of an open transaction, too), restarted later.
    case kill
    /// SIGTERM of the agent (a graceful stop that must exit 0), restarted later.
    case term
    /// `tidemark backfill ENTITY --rebuild --no-wait`.
    case rebuild
    /// `tidemark backfill ENTITY --ids … --no-wait` with live, deleted and never-existing ids.
    case backfillIDs = "backfill-ids"
    /// The replication slot dropped while the agent is stopped.
    case slotDrop = "slot-drop"
    /// After a round the index equals the source in: documents deleted from the index file behind
    /// the agent's back, which `tidemark validate` must report exactly and `tidemark repair` heal.
    /// Not a fault of the workload (the generator never draws it, so seeds keep their workloads).
    case indexDelete = "index-delete"

    static func < (lhs: OperationFamily, rhs: OperationFamily) -> Bool { lhs.order < rhs.order }

    private var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }

    /// Faults act on the agent, not on the data.
    var isFault: Bool { Self.faults.contains(self) }

    static let faults: Set<OperationFamily> = [.kill, .term, .rebuild, .backfillIDs, .slotDrop]

    /// Parses a comma list such as `insert,update,kill`; `nil`, empty or `all` means every family.
    static func parse(_ list: String?) throws -> Set<OperationFamily> {
        guard let list, !list.trimmingCharacters(in: .whitespaces).isEmpty else { return Set(allCases) }
        var families = Set<OperationFamily>()
        for item in list.split(separator: ",") {
            let name = item.trimmingCharacters(in: .whitespaces).lowercased()
            if name == "all" {
                families.formUnion(allCases)
            } else if let family = OperationFamily(rawValue: name) {
                families.insert(family)
            } else {
                throw DifferentialTestError(
                    "TIDEMARK_DIFF_OPS: unknown family '\(name)'; the families are \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        return families
    }
}
