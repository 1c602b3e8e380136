import Foundation

extension AgentConfiguration {
    /// When the agent validates and repairs on its own (`validation:` in the configuration).
    public struct Validation: Sendable {
        /// When every entity is validated, on the agent's clock in ``timeZone``; `nil` (`off`)
        /// disables it. Default `0 2 * * *` (daily at 02:00).
        public var schedule: CronExpression? = try? CronExpression(parsing: "0 2 * * *")
        /// When drift is repaired (every entity: validate, repair what differs, validate again),
        /// only with ``autoRepair``; `nil` (`off`) disables it. Default `30 2 * * *` (daily at 02:30).
        public var repairSchedule: CronExpression? = try? CronExpression(parsing: "30 2 * * *")
        /// Whether ``repairSchedule`` runs. Default `false`: drift is reported, and repaired by
        /// `tidemark repair`.
        public var autoRepair = false
        /// The time zone the schedules' wall-clock times are in. Default: the agent's (`TZ`, else
        /// the system's).
        public var timeZone: TimeZone = .current
        /// Rows per key range at the first level (``Validator/Configuration/segmentRows``). Default 1 024.
        public var segmentRows = 1_024
        /// Compare each document's content and metadata with what its source values render to
        /// (``Validator/Configuration/checkContent``). Default `true`.
        public var checkContent = true

        public init() {}
    }
}
