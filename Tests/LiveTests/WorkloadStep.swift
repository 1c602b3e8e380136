/// One SQL statement of a workload transaction and the documents it touches.
struct WorkloadStatement: Sendable {
    var sql: String
    /// The entity whose documents it touches; the table name for the unconfigured table; empty for
    /// statements that touch no table (SAVEPOINT, temporary tables).
    var target: String
    /// Document ids it touches (for a key change: the old id and the new one).
    var ids: [String] = []
    /// TRUNCATE and the reload after it: every document of `target`.
    var wholeTable = false
    /// False when ROLLBACK TO SAVEPOINT or ROLLBACK undoes it.
    var survives = true
}

/// Something done to the agent rather than to the data.
enum AgentFault: Sendable, CustomStringConvertible {
    /// SIGKILL; the agent stays down until a later ``restart``.
    case kill
    /// SIGTERM: drain, checkpoint, exit 0; the agent stays down until a later ``restart``.
    case terminate
    /// Start a new agent on the same index.
    case restart
    /// `pg_drop_replication_slot` of the configured slot (the agent is stopped).
    case dropSlot
    /// `tidemark backfill ENTITY --rebuild --no-wait`.
    case rebuild(entity: String)
    /// `tidemark backfill ENTITY --ids … --no-wait`.
    case backfillIDs(entity: String, ids: [String])

    var description: String {
        switch self {
        case .kill: "SIGKILL the agent"
        case .terminate: "SIGTERM the agent (must exit 0)"
        case .restart: "start the agent"
        case .dropSlot: "drop the replication slot (agent stopped)"
        case .rebuild(let entity): "tidemark backfill \(entity) --rebuild --no-wait"
        case .backfillIDs(let entity, let ids): "tidemark backfill \(entity) --ids \(ids.map { "'\($0)'" }.joined(separator: " ")) --no-wait"
        }
    }

    /// Document ids the fault names.
    var ids: [String] {
        if case .backfillIDs(_, let ids) = self { return ids }
        return []
    }

    /// The entity the fault acts on, if only one.
    var entity: String? {
        switch self {
        case .rebuild(let entity), .backfillIDs(let entity, _): entity
        default: nil
        }
    }
}

/// A transaction of the workload.
struct WorkloadTransaction: Sendable {
    enum Kind: String, Sendable {
        case ordinary = "transaction"
        case rolledBack = "rolled-back transaction"
        case truncateReload = "truncate-and-reload transaction"
        case streamed = "large (streamed) transaction"
    }

    /// A fault run while the transaction is open, before statement `index` (`statements.count`: before COMMIT).
    struct OpenFault: Sendable {
        var index: Int
        var fault: AgentFault
    }

    var kind: Kind
    var statements: [WorkloadStatement]
    var commits: Bool { kind != .rolledBack }
    var openFault: OpenFault?
}

/// One step of a round, and how long to wait after it.
struct WorkloadStep: Sendable {
    enum Action: Sendable {
        case transaction(WorkloadTransaction)
        case fault(AgentFault)
    }

    var action: Action
    var pause: Duration
}
