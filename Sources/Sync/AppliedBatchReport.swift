import Postgres

/// What one applied batch did, handed to an observer (metrics) right after the batch committed in
/// the index store. Observers run on the pipeline's apply task: they must be quick and never block.
public struct AppliedBatchReport: Sendable {
    /// Changes of one entity in the batch.
    public struct Changes: Sendable, Equatable {
        public var upserts = 0
        public var deletes = 0
        public var truncates = 0
        public var deadLetters = 0

        public init() {}
    }

    /// Changes per entity name.
    public var changes: [String: Changes] = [:]
    /// Upserts, deletes and truncates in the batch.
    public var size = 0
    /// How long the store transaction took (retries included).
    public var applyDuration: Duration = .zero
    /// The checkpoint the batch carried, if any.
    public var checkpoint: LSN?
    /// Commit → searchable latency of the streamed transactions in the batch, in milliseconds.
    public var latencies: [Double] = []

    public init() {}
}
